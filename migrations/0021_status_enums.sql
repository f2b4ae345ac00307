-- Every status is a Postgres enum mirrored by a Rust `kind_enum!` (and checked by the
-- mirror test): a conversation message's status and a web flow's were text with a CHECK.
CREATE TYPE message_status AS ENUM ('pending', 'done', 'failed');
ALTER TABLE conversations DROP CONSTRAINT conversations_status_check;
ALTER TABLE conversations ALTER COLUMN status DROP DEFAULT;
ALTER TABLE conversations ALTER COLUMN status TYPE message_status USING status::message_status;
ALTER TABLE conversations ALTER COLUMN status SET DEFAULT 'done';

CREATE TYPE web_flow_status AS ENUM ('pending', 'exchanging', 'connected', 'failed');
ALTER TABLE web_flows DROP CONSTRAINT web_flows_status_check;
ALTER TABLE web_flows ALTER COLUMN status DROP DEFAULT;
ALTER TABLE web_flows ALTER COLUMN status TYPE web_flow_status USING status::web_flow_status;
ALTER TABLE web_flows ALTER COLUMN status SET DEFAULT 'pending';
