#!/usr/bin/python3
"""matrix_e2ee_test.py: kneebot's end-to-end encryption, end to end.

The real bot (build/asan/kneebot for the first part, build/kneebot for the
restarts and crash points) against the homeserver double
(tests/matrix/homeserver.py, in this process, 127.0.0.1, a random port),
with the real matrix-nio and python3-olm as the humans.  Numbers in the
check lines are the tests of issue 5.  Every check prints "ok - ..." or
"not ok - ...".
"""

import asyncio
import base64
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "matrix"))

from homeserver import Homeserver  # noqa: E402
from harness import QUESTIONS, WAIT, Bot, bots, call, check, failed, finish, human  # noqa: E402

import olm  # noqa: E402
from nio import MegolmEvent, RoomMessageNotice  # noqa: E402
from nio.api import Api  # noqa: E402

ENC = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


# ---------------------------------------------------------------- helpers

class Peer:
    """A nio client that remembers every timeline event it saw, decrypted where it could."""

    def __init__(self, client):
        self.c = client
        self.events = {}     # event_id -> nio event
        self.to_device = []  # nio to-device events, decrypted

    @property
    def user_id(self):
        return self.c.user_id

    async def pump(self, timeout=300):
        r = await self.c.sync(timeout=timeout)
        for room in getattr(getattr(r, "rooms", None), "join", {}).values():
            for ev in room.timeline.events:
                self.events[ev.event_id] = ev
        self.to_device += getattr(r, "to_device_events", []) or []
        if self.c.should_upload_keys:
            await self.c.keys_upload()
        if self.c.should_query_keys:
            await self.c.keys_query()
        return r

    async def say(self, room_id, body=None, content=None):
        if room_id not in self.c.rooms:
            await self.pump(0)
        r = await self.c.room_send(room_id, "m.room.message", content or {"msgtype": "m.text", "body": body},
                                   ignore_unverified_devices=True)
        assert getattr(r, "event_id", None), r
        return r.event_id

    async def reply_to(self, hs, bot, room_id, q, timeout=WAIT):
        """The bot's answer to q as this peer decrypted it (None when it did not come or did not decrypt)."""
        raw = hs.wait_for(lambda: bot_answers(hs, bot, room_id, q), timeout)
        if not raw:
            return None
        end = time.time() + 5
        while time.time() < end:
            ev = self.events.get(raw[0]["event_id"])
            if ev is not None and not isinstance(ev, MegolmEvent):
                return ev
            await self.pump(200)
        return self.events.get(raw[0]["event_id"])


def bot_answers(hs, bot, room_id, q):
    """The bot's encrypted events in a room whose cleartext m.relates_to replies to q."""
    return [e for e in hs.room_events(room_id, "m.room.encrypted") if e["sender"] == bot and
            e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == q]


def bot_plaintext(hs, bot, room_id):
    return [e for e in hs.room_events(room_id, "m.room.message") if e["sender"] == bot]


def megolm_index(ciphertext):
    """The message index of a Megolm message: version byte, then protobuf field 1 (varint)."""
    raw = base64.b64decode(ciphertext + "=" * (-len(ciphertext) % 4))
    if len(raw) < 3 or raw[0] != 3 or raw[1] != 0x08:
        return None
    n, shift, i = 0, 0, 2
    while i < len(raw):
        n |= (raw[i] & 0x7f) << shift
        shift += 7
        if not raw[i] & 0x80:
            return n
        i += 1
    return None


def index_pairs(hs, bot, room_id):
    """(session_id, message index) -> ciphertexts the bot used it for."""
    pairs = {}
    for e in hs.room_events(room_id, "m.room.encrypted"):
        if e["sender"] == bot:
            c = e["content"]
            pairs.setdefault((c["session_id"], megolm_index(c["ciphertext"])), set()).add(c["ciphertext"])
    return pairs


def verifies(obj, user, key_id, key):
    """python-olm's verdict on a signature, over nio's canonical JSON."""
    sig = obj.get("signatures", {}).get(user, {}).get("ed25519:" + key_id)
    if not sig:
        return False
    body = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    try:
        olm.ed25519_verify(key, Api.to_canonical_json(body), sig)
        return True
    except olm.OlmVerifyError:
        return False


def bot_device(hs, bot):
    with hs.cond:
        devs = [d for d, v in hs.devices.get(bot, {}).items() if v.get("keys")]
    return devs[-1] if devs else None


def log_count(bot, pattern):
    return len(re.findall(pattern, bot.log()))


async def new_peer(hs, tmp, name, password):
    return Peer(await human(hs, tmp, name, password))


async def encrypted_room(hs, owner, bot, invite=(), state=()):
    rid = (await owner.c.room_create(invite=[bot] + list(invite), initial_state=[ENC] + list(state))).room_id
    joined = hs.wait_for(lambda: hs.rooms[rid].membership(bot) == "join", WAIT)
    await owner.pump(0)
    return rid, bool(joined)


# ---------------------------------------------------------------- part A: one ASan bot

async def part_live(hs, tmp, bot_id, alice, carol):
    """Tests 1, 2, 5, 6, 7, 9, 10 and wedged sessions, on one build/asan/kneebot."""
    early = (await alice.c.room_create(invite=[bot_id], initial_state=[ENC])).room_id
    await alice.pump(0)
    before = await alice.say(early, QUESTIONS[2])
    hs.require_uia_for_xsign = True   # a server before spec v1.11
    bot = Bot(tmp, hs, bot_id, binary="build/asan/kneebot", encryption=True,
              extra="admins = @alice:localhost\n").start()
    try:
        ok = hs.wait_for(lambda: hs.rooms[early].membership(bot_id) == "join" and bot_device(hs, bot_id), WAIT)
        check(ok and re.search(r"ed25519 fingerprint (\S{4} ){10}\S{3}", bot.log()),
              "the bot joins, uploads its device and logs its ed25519 fingerprint")
        await alice.pump(0)
        q1 = await alice.say(early, QUESTIONS[3])
        rep = await alice.reply_to(hs, bot_id, early, q1)
        raw = bot_answers(hs, bot_id, early, q1)
        check(isinstance(rep, RoomMessageNotice) and "knee" in rep.body.lower(),
              "1: an encrypted question is answered with an encrypted m.notice that nio decrypts")
        c = rep.source["content"] if rep else {}
        check(c.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == q1
              and c.get("m.mentions", {}).get("user_ids") == [alice.user_id],
              "1: ... replying to the question (m.in_reply_to) and mentioning the asker (m.mentions)")
        check(raw and raw[0]["content"].get("m.relates_to") == {"m.in_reply_to": {"event_id": q1}}
              and "m.mentions" not in raw[0]["content"],
              "1: ... with m.relates_to in the cleartext (spec), m.mentions only inside the ciphertext")
        check(not bot_plaintext(hs, bot_id, early), "1: no plaintext message from the bot in the encrypted room")
        check(not bot_answers(hs, bot_id, early, before),
              "10: a question from before the bot's first start is never answered")
        await keys_checks(hs, bot_id, alice)
        await members(hs, tmp, bot, bot_id, alice, carol, early)
        await replays(hs, bot, bot_id, alice, early, q1)
        await late_keys(hs, bot, bot_id, alice, early)
        await never_answered(hs, bot, bot_id, alice, early)
        await wedged(hs, bot, bot_id, alice)
    finally:
        rc = bot.stop()
    log = bot.log()
    check(rc == 0 and "ERROR: AddressSanitizer" not in log and "ERROR: LeakSanitizer" not in log
          and "runtime error" not in log, "the ASan+UBSan build ran the above and stopped cleanly")
    check(not re.search(r"<[3-6]>.*(outer side|kneecap|band syndrome|session_key)", log),
          "no message text and no key in the log at info level or above")
    return early


async def keys_checks(hs, bot_id, alice):
    """Test 2: what the bot published verifies in python-olm, and nio took its device and keys."""
    dev = bot_device(hs, bot_id)
    with hs.cond:
        d = json.loads(json.dumps(hs.devices[bot_id][dev]))
        xs = json.loads(json.dumps(hs.xsign.get(bot_id, {})))
        uia = [s for s in hs.uia_sessions]
    dk = d["keys"]
    ed = dk["keys"]["ed25519:" + dev]
    check(verifies(dk, bot_id, dev, ed), "2: python-olm verifies the device keys' self-signature (canonical JSON)")
    otks = list(d["otks"].values()) + list(d.get("claimed", {}).values())
    check(otks and all(verifies(k, bot_id, dev, ed) for k in otks),
          "2: python-olm verifies every one-time key's signature (%d keys)" % len(otks))
    fb = d["fallback"].get("signed_curve25519", {}).get("key", {})
    check(fb.get("fallback") is True and verifies(fb, bot_id, dev, ed),
          "2: a fallback key, marked fallback: true, signed by the device")
    mk, sk = xs.get("master", {}), xs.get("self_signing", {})
    mpub = list(mk.get("keys", {}).values())[0] if mk.get("keys") else ""
    spub = list(sk.get("keys", {}).values())[0] if sk.get("keys") else ""
    check(mk.get("usage") == ["master"] and sk.get("usage") == ["self_signing"] and verifies(sk, bot_id, mpub, mpub),
          "2: master and self-signing keys published; python-olm verifies the master's signature of the self-signing key")
    check(verifies(dk, bot_id, spub, spub), "2: python-olm verifies the self-signing key's signature of the device")
    check(uia, "2: the first cross-signing upload completed user-interactive auth with the password (pre-v1.11 server)")
    nio_dev = alice.c.device_store[bot_id].get(dev) if bot_id in alice.c.device_store.users else None
    check(nio_dev is not None and nio_dev.ed25519 == ed and alice.c.olm.session_store.get(dk["keys"]["curve25519:" + dev]),
          "2: nio accepted the bot's device keys and opened an Olm session with a claimed one-time key")


async def members(hs, tmp, bot, bot_id, alice, carol, rid):
    """Test 5: a member who joins later reads the next reply; one who leaves does not get the next key."""
    await alice.c.room_invite(rid, carol.user_id)
    await carol.c.join(rid)
    await carol.pump(0)
    await alice.pump(0)
    first = bot_answers_all(hs, bot_id, rid)
    q = await alice.say(rid, QUESTIONS[0])
    rep = await carol.reply_to(hs, bot_id, rid, q)
    raw = bot_answers(hs, bot_id, rid, q)
    check(isinstance(rep, RoomMessageNotice),
          "5: a member who joined later decrypts the bot's next reply")
    check(raw and first and raw[0]["content"]["session_id"] == first[-1]["content"]["session_id"],
          "5: ... sent with the same outbound session (joining shares it, no rotation)")
    mark = len(hs.to_device_log)
    carol_dev = carol.c.device_id
    await carol.c.room_leave(rid)
    await alice.pump(0)
    q2 = await alice.say(rid, QUESTIONS[1])
    rep2 = await alice.reply_to(hs, bot_id, rid, q2)
    raw2 = bot_answers(hs, bot_id, rid, q2)
    with hs.cond:
        to_carol = [x for x in hs.to_device_log[mark:] if x[0] == bot_id and x[2] == carol.user_id]
    check(isinstance(rep2, RoomMessageNotice) and raw2 and raw2[0]["content"]["session_id"] != raw[0]["content"]["session_id"],
          "5: a member leaving rotates the room key (new session), and the others still read the reply")
    check(not to_carol and carol_dev, "5: ... the member who left gets no to-device message (no new key)")

    # a second device of alice, then deleted: the key it held is rotated
    alice2 = await new_peer(hs, tmp, "alice", "alicepw")
    await alice2.pump(0)
    q3 = await alice.say(rid, QUESTIONS[2])
    rep3 = await alice2.reply_to(hs, bot_id, rid, q3)
    raw3 = bot_answers(hs, bot_id, rid, q3)
    check(isinstance(rep3, RoomMessageNotice), "5: a new device of a member decrypts the next reply")
    hs.delete_device(alice.user_id, alice2.c.device_id)
    await alice2.c.close()
    await alice.pump(0)
    q4 = await alice.say(rid, QUESTIONS[3])
    rep4 = await alice.reply_to(hs, bot_id, rid, q4)
    raw4 = bot_answers(hs, bot_id, rid, q4)
    check(isinstance(rep4, RoomMessageNotice) and raw3 and raw4
          and raw4[0]["content"]["session_id"] != raw3[0]["content"]["session_id"]
          and "was deleted: the room keys it held are rotated" in bot.log(),
          "5: a deleted device rotates the room keys it held")


def bot_answers_all(hs, bot, room_id):
    return [e for e in hs.room_events(room_id, "m.room.encrypted") if e["sender"] == bot]


async def replays(hs, bot, bot_id, alice, rid, q):
    """Tests 6 and 7: replayed and moved ciphertexts are refused; a redelivered event is not flagged."""
    orig = hs.event_index[q].ev
    replay = hs.inject(rid, alice.user_id, "m.room.encrypted", dict(orig["content"]))
    other, joined = await encrypted_room(hs, alice, bot_id)
    moved = hs.inject(other, alice.user_id, "m.room.encrypted", dict(orig["content"]))
    q2 = await alice.say(rid, QUESTIONS[0])   # a fresh question behind them
    await alice.reply_to(hs, bot_id, rid, q2)
    time.sleep(0.5)
    log = bot.log()
    check(not bot_answers(hs, bot_id, rid, replay) and re.search(re.escape(replay) + r".*a replay", log),
          "6: a replayed ciphertext under a new event id is refused (message index already used)")
    check(joined and not bot_answers(hs, bot_id, other, moved) and re.search(re.escape(moved) + r".*another room", log),
          "7: a ciphertext moved to another room is refused")

    # the server hands the answered question over again: no second answer, no alarm
    dev = bot_device(hs, bot_id)
    with hs.cond:
        ev = hs._render(hs.event_index[q], bot_id, None)
        token = hs._token(hs.pos, hs.td_pos, hs.dl_pos)
    hs.queue_raw_sync(bot_id, json.dumps({"next_batch": token, "rooms": {"join": {rid: {
        "timeline": {"events": [ev], "limited": True, "prev_batch": "p0"}}}},
        "device_one_time_keys_count": {"signed_curve25519": hs.otk_count(bot_id, dev)},
        "device_unused_fallback_key_types": ["signed_curve25519"]}).encode())
    q3 = await alice.say(rid, QUESTIONS[1])
    await alice.reply_to(hs, bot_id, rid, q3)
    check(len(bot_answers(hs, bot_id, rid, q)) == 1 and not re.search(re.escape(q) + r".*refused", bot.log()),
          "6: a redelivered event is neither answered twice nor flagged")


async def late_keys(hs, bot, bot_id, alice, rid):
    """Test 9: a key that arrives after its message; a withheld m.unverified gets one notice."""
    hs.hold_to_device_for.add(bot_id)
    alice.c.invalidate_outbound_session(rid)   # a new room key for the next message
    q = await alice.say(rid, QUESTIONS[2])
    waited = hs.wait_for(lambda: re.search(re.escape(q) + r" in \S+ waits: its room key", bot.log()), WAIT)
    time.sleep(0.5)
    check(waited and not bot_answers(hs, bot_id, rid, q), "9: a message whose key has not arrived waits, unanswered")
    hs.release_to_device(bot_id)
    rep = await alice.reply_to(hs, bot_id, rid, q)
    check(isinstance(rep, RoomMessageNotice), "9: ... and is answered when its key arrives")

    dev = bot_device(hs, bot_id)
    wh = {"algorithm": "m.megolm.v1.aes-sha2", "room_id": rid, "session_id": "x" * 43,
          "sender_key": "y" * 43, "code": "m.unverified", "reason": "The sender has disabled encrypting to unverified devices."}
    mine = len(bot_answers_all(hs, bot_id, rid))
    hs.send_to_device(alice.user_id, bot_id, dev, "m.room_key.withheld", wh)
    got = hs.wait_for(lambda: len(bot_answers_all(hs, bot_id, rid)) > mine, WAIT)
    hs.send_to_device(alice.user_id, bot_id, dev, "m.room_key.withheld", wh)
    q2 = await alice.say(rid, QUESTIONS[3])   # something to wait for after the second one
    await alice.reply_to(hs, bot_id, rid, q2)
    notices = [e for e in bot_answers_all(hs, bot_id, rid)[mine:] if "m.relates_to" not in e["content"]]
    await alice.pump(0)
    text = [alice.events.get(e["event_id"]) for e in notices]
    check(got and len(notices) == 1 and isinstance(text[0], RoomMessageNotice) and "verify" in text[0].body
          and alice.user_id in text[0].source["content"].get("m.mentions", {}).get("user_ids", []),
          "9: a withheld m.unverified key gets one plain-language notice in the room (not one per withheld)")


async def never_answered(hs, bot, bot_id, alice, rid):
    """Test 10: own messages, notices and edits, encrypted, are never answered."""
    notice = await alice.say(rid, content={"msgtype": "m.notice", "body": QUESTIONS[0]})
    edit = await alice.say(rid, content={"msgtype": "m.text", "body": "* " + QUESTIONS[1],
                                         "m.new_content": {"msgtype": "m.text", "body": QUESTIONS[1]},
                                         "m.relates_to": {"rel_type": "m.replace", "event_id": notice}})
    q = await alice.say(rid, QUESTIONS[2])
    await alice.reply_to(hs, bot_id, rid, q)
    time.sleep(0.5)
    own = bot_answers_all(hs, bot_id, rid)
    check(not bot_answers(hs, bot_id, rid, notice) and not bot_answers(hs, bot_id, rid, edit),
          "10: encrypted notices and edits are not answered")
    check(not any(bot_answers(hs, bot_id, rid, e["event_id"]) for e in own), "10: the bot never answers itself")


async def wedged(hs, bot, bot_id, alice):
    """A wedged Olm session: a new session and m.dummy, at most hourly per device."""
    dev = bot_device(hs, bot_id)
    with hs.cond:
        bot_curve = hs.devices[bot_id][dev]["keys"]["keys"]["curve25519:" + dev]
    junk = {"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": alice.c.olm.account.identity_keys["curve25519"],
            "ciphertext": {bot_curve: {"type": 1, "body": base64.b64encode(b"\x03" + os.urandom(80)).decode().rstrip("=")}}}

    def dummies():
        return [x for x in hs.to_device_log if x[0] == bot_id and x[2] == alice.user_id and x[4] == "m.room.encrypted"]
    before = len(dummies())
    hs.send_to_device(alice.user_id, bot_id, dev, "m.room.encrypted", junk)
    got = hs.wait_for(lambda: len(dummies()) > before, WAIT)
    end = time.time() + 5
    while time.time() < end and not any(type(e).__name__ == "DummyEvent" for e in alice.to_device):
        await alice.pump(200)
    check(got and any(type(e).__name__ == "DummyEvent" for e in alice.to_device),
          "a wedged Olm session: the bot opens a new one and sends m.dummy, which nio decrypts")
    hs.send_to_device(alice.user_id, bot_id, dev, "m.room.encrypted", junk)
    time.sleep(1.5)
    check(len(dummies()) == before + 1 and "a new session was opened within the hour" in bot.log(),
          "... at most hourly per device")


# ---------------------------------------------------------------- part B: restarts, crashes, keys

async def restart(hs, tmp, bot_id, alice, rid):
    """Test 3: SIGKILL and restart: the old sessions keep working, same device, nothing uploaded twice."""
    bot = Bot(tmp, hs, bot_id, encryption=True, extra="admins = @alice:localhost\n").start()
    q = await alice.say(rid, QUESTIONS[0])
    rep = await alice.reply_to(hs, bot_id, rid, q)
    before = bot_answers(hs, bot_id, rid, q)
    bot.kill()
    dev = bot_device(hs, bot_id)
    bot.start()
    q2 = await alice.say(rid, QUESTIONS[1])   # alice's Megolm session from before: the stored inbound copy
    rep2 = await alice.reply_to(hs, bot_id, rid, q2)
    after = bot_answers(hs, bot_id, rid, q2)
    check(isinstance(rep, RoomMessageNotice) and isinstance(rep2, RoomMessageNotice) and before and after
          and before[0]["content"]["session_id"] == after[0]["content"]["session_id"],
          "3: after SIGKILL and restart the old Megolm sessions (both ways) keep working")
    alice.c.invalidate_outbound_session(rid)   # a new room key, over the Olm session from before
    q3 = await alice.say(rid, QUESTIONS[2])
    rep3 = await alice.reply_to(hs, bot_id, rid, q3)
    check(isinstance(rep3, RoomMessageNotice), "3: ... and the stored Olm session still carries keys")
    with hs.cond:
        ups = [u for u in hs.key_uploads if u["user"] == bot_id]
        logins = [x for x in hs.logins if x[0] == bot_id]
    check(bot_device(hs, bot_id) == dev and all(x[1] == dev for x in logins),
          "3: the same device throughout (%d logins, device %s)" % (len(logins), dev))
    check(len([u for u in ups if u["device_keys"]]) == 1 and all(u["status"] == 200 for u in ups),
          "3: identity keys uploaded once; no upload refused (no 'already exists')")
    return bot


async def crash_points(hs, tmp, bot, bot_id, alice):
    """Test 4: a crash at each point of the send path: one answer per question, no message index twice."""
    rot = dict(ENC, content={"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_msgs": 1})
    rid, joined = await encrypted_room(hs, alice, bot_id, state=[rot])
    points = ["sync-before-commit", "sync-after-commit", "share-before-commit", "seal-before-commit",
              "send-before-put", "send-after-put", "todevice-after-put"]
    asked, hit = [], []
    q0 = await alice.say(rid, QUESTIONS[0])
    asked.append(q0)
    await alice.reply_to(hs, bot_id, rid, q0)
    for i, point in enumerate(points):
        bot.kill()
        bot.start({"KNEEBOT_CRASH_POINT": point})
        asked.append(await alice.say(rid, QUESTIONS[i % 4] + " (%d)" % i))
        try:
            bot.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            pass
        hit.append(bot.proc.poll() == -9 and ("test crash point %s reached" % point) in bot.log())
        bot.kill()
    bot.start()
    reps = [await alice.reply_to(hs, bot_id, rid, q, 30) for q in asked]
    time.sleep(1.0)
    counts = [len(bot_answers(hs, bot_id, rid, q)) for q in asked]
    check(joined and all(hit), "4: each crash point was hit on purpose (%s)" % dict(zip(points, hit)))
    check(counts == [1] * len(asked) and all(isinstance(r, RoomMessageNotice) for r in reps),
          "4: after a crash at each point every question is answered once, and nio reads each (%s)" % counts)
    pairs = index_pairs(hs, bot_id, rid)
    check(pairs and all(len(v) == 1 for v in pairs.values()) and None not in [k[1] for k in pairs],
          "4: no (session, message index) used for two ciphertexts (%d pairs)" % len(pairs))
    sessions = {k[0] for k in pairs}
    check(len(sessions) == len(pairs), "rotation_period_msgs = 1 in m.room.encryption: a new room key per message")
    return rid


async def faults(hs, bot, bot_id, alice, rot):
    """Rate limits and lost answers on the key path: one delivery per to-device txnId; soft logout keeps the device."""
    dev = bot_device(hs, bot_id)
    hs.fault(user=bot_id, path="/sendToDevice", kind="429", count=2, retry_after_ms=200)
    hs.fault(user=bot_id, path="/sendToDevice", kind="process_then_500", count=1)
    hs.fault(user=bot_id, path="/keys/query", kind="500", count=1)
    mark = len(hs.to_device_log)
    with hs.cond:
        hs._device_changed(alice.user_id)   # device_lists.changed: a query before the next share
    q = await alice.say(rot, QUESTIONS[2])
    rep = await alice.reply_to(hs, bot_id, rot, q, 30)
    with hs.cond:
        keys = [x for x in hs.to_device_log[mark:] if x[0] == bot_id and x[2] == alice.user_id]
        spent = all(f["count"] == 0 for f in hs.faults)
    check(isinstance(rep, RoomMessageNotice) and len(keys) == 1 and spent,
          "429s and a lost answer on sendToDevice, a 500 on keys/query: the key reaches the member once, "
          "and the answer is read (%d deliveries)" % len(keys))
    hs.invalidate_tokens(bot_id, soft_logout=True)
    q = await alice.say(rot, QUESTIONS[3])
    rep = await alice.reply_to(hs, bot_id, rot, q, 30)
    with hs.cond:
        last = [x for x in hs.logins if x[0] == bot_id][-1]
    check(isinstance(rep, RoomMessageNotice) and last[1] == dev and last[2] == dev and bot_device(hs, bot_id) == dev,
          "soft logout: logged in again as the same device, its encryption keys kept",
          {"reply": type(rep).__name__, "last_login": last, "device": dev, "device_now": bot_device(hs, bot_id),
           "logins": [x for x in hs.logins if x[0] == bot_id]})


async def one_time_keys(hs, tmp, bot, bot_id, alice, rid):
    """Test 8: one-time keys kept at 50; exhaustion falls back to the fallback key, which is replaced."""
    dev = bot_device(hs, bot_id)
    check(hs.wait_for(lambda: hs.otk_count(bot_id, dev) == 50, WAIT), "8: 50 one-time keys on the server")
    old_fb = hs.fallback_state(bot_id, dev)
    hs.fault(user=bot_id, path="/keys/upload", kind="429", count=100000, retry_after_ms=300)
    carol_tok = [t for t, w in hs.tokens.items() if w[0] == "@carol:localhost"][0]
    claimed = [call(hs, "POST", "/keys/claim", {"one_time_keys": {bot_id: {dev: "signed_curve25519"}}}, carol_tok)
               ["one_time_keys"][bot_id][dev] for _ in range(50)]
    check(all(not list(c.values())[0].get("fallback") for c in claimed) and hs.otk_count(bot_id, dev) == 0,
          "8: 50 claims take every one-time key")
    dave = await new_peer(hs, tmp, "dave", "davepw")
    await alice.c.room_invite(rid, dave.user_id)
    await dave.c.join(rid)
    await dave.pump(0)
    fb = hs.fallback_state(bot_id, dev)
    q = await dave.say(rid, QUESTIONS[1])
    rep = await dave.reply_to(hs, bot_id, rid, q)
    check(fb and hs.fallback_state(bot_id, dev) == (fb[0], True) and isinstance(rep, RoomMessageNotice),
          "8: exhausted, a new member's client opens its Olm session with the fallback key, and the bot answers")
    hs.clear_faults()
    new = hs.wait_for(lambda: hs.fallback_state(bot_id, dev) != (fb[0], True) and hs.fallback_state(bot_id, dev), WAIT)
    check(new and new[0] != fb[0] and not new[1] and old_fb and old_fb[0] == fb[0],
          "8: ... the used fallback key is then replaced by a new one")
    check(hs.wait_for(lambda: hs.otk_count(bot_id, dev) == 50, WAIT), "8: ... and the one-time keys topped up to 50 again")
    await dave.c.close()


async def cross_signed_only(hs, tmp, bot, bot_id, alice, rid):
    """require_cross_signed = yes: nio's devices (not cross-signed) get no room key."""
    bot.stop()
    with open(bot.conf, "a") as f:
        f.write("require_cross_signed = yes\n")
    bot.start()
    mark = len(hs.to_device_log)
    q = await alice.say(rid, QUESTIONS[3])
    raw = hs.wait_for(lambda: bot_answers(hs, bot_id, rid, q), WAIT)
    await alice.pump(500)
    ev = alice.events.get(raw[0]["event_id"]) if raw else None
    with hs.cond:
        keys = [x for x in hs.to_device_log[mark:] if x[0] == bot_id and x[2] == alice.user_id]
    check(raw and isinstance(ev, MegolmEvent) and not keys,
          "require_cross_signed = yes: a device its owner has not cross-signed gets no room key")
    bot.stop()
    with open(bot.conf) as f:
        conf = f.read()
    with open(bot.conf, "w") as f:
        f.write(conf.replace("require_cross_signed = yes\n", ""))


async def upgrade(hs, tmp, alice):
    """A store synced without encryption (lazy-loaded members) gets one full sync when encryption is turned on."""
    old = hs.add_user("oldbot", "botpw", "Old Bot")
    bot = Bot(tmp, hs, old, name="old").start()
    rid, joined = await encrypted_room(hs, alice, old)
    await alice.say(rid, QUESTIONS[0])
    bot.stop()
    bot = Bot(tmp, hs, old, name="old", encryption=True).start()
    hs.wait_for(lambda: bot_device(hs, old), WAIT)
    await alice.pump(0)
    q = await alice.say(rid, QUESTIONS[1])
    rep = await alice.reply_to(hs, old, rid, q)
    check(joined and "one full sync to learn every member" in bot.log() and isinstance(rep, RoomMessageNotice),
          "encryption turned on for a store that ran without it: one full sync, then encrypted answers")
    bot.stop()


def config_errors(tmp, hs):
    conf = os.path.join(tmp, "nokey.conf")
    with open(conf, "w") as f:
        f.write("[matrix.a]\nhomeserver = %s\nuser_id = @kneebot:localhost\npassword_file = pw\n" % hs.url)
    with open(os.path.join(tmp, "pw"), "w") as f:
        f.write("x\n")
    p = subprocess.run([os.path.join(ROOT, "build/kneebot"), "--check-config", conf], capture_output=True, text=True)
    check(p.returncode == 78 and "needs pickle_key_file" in p.stderr,
          "encryption = yes without pickle_key_file is a clear configuration error")
    with open(os.path.join(tmp, "short.key"), "w") as f:
        f.write("too short\n")
    with open(conf, "a") as f:
        f.write("pickle_key_file = short.key\n")
    p = subprocess.run([os.path.join(ROOT, "build/kneebot"), "--check-config", conf], capture_output=True, text=True)
    check(p.returncode == 78 and "at least 32" in p.stderr, "a pickle key under 32 bytes is refused")


def key_file_checks(bot):
    st = os.stat(bot.pickle_key)
    with open(bot.pickle_key, "rb") as f:
        key = f.read()
    con = sqlite3.connect(bot.db)
    pickles = [r[0] for r in con.execute("SELECT pickle FROM olm_account UNION ALL SELECT pickle FROM megolm_in")]
    con.close()
    check(st.st_mode & 0o777 == 0o600 and len(key.strip()) >= 32,
          "the pickle key file was created at first start, mode 0600, 32 bytes or more")
    check(pickles and all(key.strip().decode() not in p and "{" not in p for p in pickles),
          "the store holds only encrypted pickles")


async def lost_key(hs, tmp, bot, bot_id, alice, rid):
    """A lost pickle key: the bot starts over as a new device, and answers again."""
    dev = bot_device(hs, bot_id)
    with open(bot.pickle_key, "w") as f:
        f.write("a different key, long enough to be accepted as one\n")
    bot.start()
    new = hs.wait_for(lambda: bot_device(hs, bot_id) not in (None, dev), WAIT)
    await alice.pump(0)
    q = await alice.say(rid, QUESTIONS[0])
    rep = await alice.reply_to(hs, bot_id, rid, q, 30)
    with hs.cond:
        login = [x for x in hs.logins if x[0] == bot_id][-1]
    check(new and "logs in as a NEW device" in bot.log() and login[2] is None and login[1] != dev,
          "a lost pickle key: the bot starts over as a new device (a login without device_id)")
    check(isinstance(rep, RoomMessageNotice), "... which members read again (%s)" % type(rep).__name__)
    bot.stop()


async def main():
    tmp = tempfile.mkdtemp(prefix="kneebot-e2ee-")
    hs = Homeserver()
    hs.start()
    peers = []
    try:
        bot_id = hs.add_user("kneebot", "botpw", "Kneebot")
        for u in ("alice", "carol", "dave"):
            hs.add_user(u, u + "pw", u.capitalize())
        alice = await new_peer(hs, tmp, "alice", "alicepw")
        carol = await new_peer(hs, tmp, "carol", "carolpw")
        peers = [alice, carol]
        config_errors(tmp, hs)
        rid = await part_live(hs, tmp, bot_id, alice, carol)
        await upgrade(hs, tmp, alice)
        bot = await restart(hs, tmp, bot_id, alice, rid)
        key_file_checks(bot)
        rot = await crash_points(hs, tmp, bot, bot_id, alice)
        await faults(hs, bot, bot_id, alice, rot)
        await one_time_keys(hs, tmp, bot, bot_id, alice, rid)
        await cross_signed_only(hs, tmp, bot, bot_id, alice, rot)
        await lost_key(hs, tmp, bot, bot_id, alice, rid)
    finally:
        for b in bots:
            b.kill()
        for p in peers:
            await p.c.close()
        hs.stop()
        finish(tmp, 40)


if __name__ == "__main__":
    t0 = time.time()
    asyncio.run(main())
    print("# e2ee suite took %.1f s" % (time.time() - t0))
    sys.exit(1 if failed() else 0)
