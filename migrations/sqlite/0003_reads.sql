-- Where each agent has read up to in each conversation: unread counts in
-- the console come from it.
CREATE TABLE conversation_reads (
    agent_id        BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    PRIMARY KEY (agent_id, conversation_id)
);
