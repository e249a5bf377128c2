-- Schema version 4 as migrations[0] to [3] created it, with typical rows.
-- Never edit: v4.db was made from this file once (see README) and store_test
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
CREATE TABLE olm_account (device_id TEXT PRIMARY KEY, pickle TEXT NOT NULL, curve25519 TEXT NOT NULL, ed25519 TEXT NOT NULL, keys_uploaded INTEGER NOT NULL DEFAULT 0, signed INTEGER NOT NULL DEFAULT 0, forget_fallback_ms INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);CREATE TABLE cross_signing (user_id TEXT PRIMARY KEY, master TEXT NOT NULL, self_signing TEXT NOT NULL, uploaded INTEGER NOT NULL DEFAULT 0);CREATE TABLE olm_sessions (session_id TEXT PRIMARY KEY, curve25519 TEXT NOT NULL, pickle TEXT NOT NULL, created_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL);CREATE INDEX olm_sessions_peer ON olm_sessions (curve25519, used_ms);CREATE TABLE tracked_users (user_id TEXT PRIMARY KEY, outdated INTEGER NOT NULL DEFAULT 1, generation INTEGER NOT NULL DEFAULT 0, master TEXT);CREATE TABLE devices (user_id TEXT NOT NULL, device_id TEXT NOT NULL, ed25519 TEXT NOT NULL, curve25519 TEXT NOT NULL, cross_signed INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (user_id, device_id));CREATE INDEX devices_curve ON devices (curve25519);CREATE TABLE members (room_id TEXT NOT NULL, user_id TEXT NOT NULL, membership TEXT NOT NULL, PRIMARY KEY (room_id, user_id));CREATE TABLE room_encryption (room_id TEXT PRIMARY KEY, rotation_ms INTEGER NOT NULL, rotation_msgs INTEGER NOT NULL);CREATE TABLE megolm_in (room_id TEXT NOT NULL, session_id TEXT NOT NULL, sender TEXT NOT NULL, sender_key TEXT NOT NULL, ed25519 TEXT NOT NULL, verified INTEGER NOT NULL DEFAULT 0, first_index INTEGER NOT NULL, pickle TEXT NOT NULL, received_ms INTEGER NOT NULL, PRIMARY KEY (room_id, session_id));CREATE INDEX megolm_in_session ON megolm_in (session_id);CREATE TABLE megolm_index (session_id TEXT NOT NULL, msg_index INTEGER NOT NULL, event_id TEXT NOT NULL, ts_ms INTEGER NOT NULL, PRIMARY KEY (session_id, msg_index));CREATE TABLE megolm_out (room_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, pickle TEXT NOT NULL, created_ms INTEGER NOT NULL);CREATE TABLE megolm_shared (session_id TEXT NOT NULL, user_id TEXT NOT NULL, device_id TEXT NOT NULL, msg_index INTEGER NOT NULL, PRIMARY KEY (session_id, user_id, device_id));CREATE TABLE awaiting_key (event_id TEXT PRIMARY KEY, room_id TEXT NOT NULL, session_id TEXT NOT NULL, event TEXT NOT NULL, received_ms INTEGER NOT NULL, answer INTEGER NOT NULL);CREATE TABLE to_device_out (id INTEGER PRIMARY KEY AUTOINCREMENT, txn_id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL, body TEXT NOT NULL, session_id TEXT, created_ms INTEGER NOT NULL);CREATE TABLE crypto_marks (what TEXT NOT NULL, key TEXT NOT NULL, value TEXT, at_ms INTEGER NOT NULL, PRIMARY KEY (what, key));
INSERT INTO olm_account VALUES ('KNEEDEVICE', 'not-a-real-pickle', 'curve25519curve25519curve25519curve25519abc', 'ed25519ed25519ed25519ed25519ed25519ed25519e', 1, 1, 0, 1714000000000);
INSERT INTO cross_signing VALUES ('@kneebot:example.org', 'master-pickle', 'self-signing-pickle', 1);
INSERT INTO olm_sessions VALUES ('sessionid', 'alicecurve', 'olm-pickle', 1714000100000, 1714000200000);
INSERT INTO tracked_users VALUES ('@alice:example.org', 0, 3, 'alicemaster');
INSERT INTO devices VALUES ('@alice:example.org', 'ALICEPHONE', 'aliceed', 'alicecurve', 1, 0);
INSERT INTO members VALUES ('!dm:example.org', '@alice:example.org', 'join');
INSERT INTO room_encryption VALUES ('!dm:example.org', 604800000, 100);
INSERT INTO megolm_in VALUES ('!dm:example.org', 'megolmsession', '@alice:example.org', 'alicecurve', 'aliceed', 1, 0, 'megolm-in-pickle', 1714000150000);
INSERT INTO megolm_index VALUES ('megolmsession', 0, '$question1', 1714000100000);
INSERT INTO megolm_out VALUES ('!dm:example.org', 'oursession', 'megolm-out-pickle', 1714000160000);
INSERT INTO megolm_shared VALUES ('oursession', '@alice:example.org', 'ALICEPHONE', 0);
INSERT INTO awaiting_key VALUES ('$waiting', '!dm:example.org', 'latesession', '{"type":"m.room.encrypted"}', 1714000170000, 1);
INSERT INTO to_device_out (txn_id, event_type, body, session_id, created_ms) VALUES ('kbd00112233', 'm.room.encrypted', '{"messages":{}}', 'oursession', 1714000180000);
INSERT INTO crypto_marks VALUES ('dummy', 'alicecurve', '@alice:example.org', 1714000190000);
CREATE TABLE gaps (id INTEGER PRIMARY KEY AUTOINCREMENT, room_id TEXT NOT NULL, from_token TEXT NOT NULL, to_token TEXT NOT NULL, pages INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);
INSERT INTO gaps (room_id, from_token, to_token, created_ms) VALUES ('!club:example.org', 't47-2590_0_0', 's72594_4483_1934', 1714000210000);
PRAGMA user_version = 4;
