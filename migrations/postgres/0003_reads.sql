-- Where each agent has read up to in each conversation: unread counts in
-- the console come from it.
CREATE TABLE conversation_reads (
    agent_id        UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    PRIMARY KEY (agent_id, conversation_id)
);
