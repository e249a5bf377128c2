-- Schema version 2 as migrations[0] and [1] created it, with typical rows.
-- Never edit: v2.db was made from this file once (see README) and store_test
-- migrates it to the current version.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);CREATE TABLE events (event_id TEXT PRIMARY KEY, room_id TEXT NOT NULL, state INTEGER NOT NULL, ts_ms INTEGER NOT NULL);CREATE INDEX events_ts ON events (ts_ms);CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, txn_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, room_id TEXT NOT NULL, event_type TEXT, content TEXT, reply_to TEXT, created_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, sealed INTEGER NOT NULL DEFAULT 0);
INSERT INTO meta VALUES ('homeserver', 'https://matrix.example.org');
INSERT INTO meta VALUES ('user_id', '@kneebot:example.org');
INSERT INTO meta VALUES ('device_id', 'KNEEDEVICE');
INSERT INTO meta VALUES ('access_token', 'syt_v1_not_a_real_token');
INSERT INTO meta VALUES ('next_batch', 's72594_4483_1934');
INSERT INTO meta VALUES ('history_before_ms', '1714000000000');
INSERT INTO events VALUES ('$question1', '!club:example.org', 1, 1714000100000);
INSERT INTO events VALUES ('$answer1', '!club:example.org', 2, 1714000101000);
INSERT INTO outbox (txn_id, kind, room_id, event_type, content, reply_to, created_ms, attempts, sealed)
  VALUES ('kb00112233445566778899aabbccddeeff', 'send', '!club:example.org', 'm.room.message',
  '{"msgtype":"m.notice","body":"Ice it.","m.relates_to":{"m.in_reply_to":{"event_id":"$question2"}},"m.mentions":{"user_ids":["@alice:example.org"]}}',
  '$question2', 1714000200000, 2, 0);
INSERT INTO outbox (txn_id, kind, room_id, created_ms) VALUES ('kbffeeddccbbaa99887766554433221100', 'join', '#runners:example.org', 1714000300000);
CREATE TABLE rooms (room_id TEXT PRIMARY KEY, membership TEXT NOT NULL, joined INTEGER NOT NULL DEFAULT -1, invited INTEGER NOT NULL DEFAULT -1, encrypted INTEGER NOT NULL DEFAULT 0);
INSERT INTO rooms VALUES ('!club:example.org', 'join', 12, 1, 0);
INSERT INTO rooms VALUES ('!dm:example.org', 'join', 2, 0, 1);
INSERT INTO rooms VALUES ('!new:example.org', 'invite', -1, -1, 0);
PRAGMA user_version = 2;
