-- Phone identities are stored in their key form (kefu_core::keys::phone_key):
-- a mainland mobile without its country code. Forms used to store
-- "+8613800138000" while the importer stores "13800138000", so an imported
-- customer was not found by the number they typed into a form. Rewrite the
-- old form where the key form is not taken already (then the older contact
-- keeps the number; nothing is merged behind anyone's back).
UPDATE contact_identities
SET value = substr(value, 4)
WHERE kind = 'phone'
  AND value LIKE '+861%'
  AND length(value) = 14
  AND substr(value, 5, 1) BETWEEN '3' AND '9'
  AND NOT EXISTS (
      SELECT 1 FROM contact_identities o
      WHERE o.kind = 'phone' AND o.value = substr(contact_identities.value, 4)
  );
