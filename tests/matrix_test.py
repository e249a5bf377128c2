#!/usr/bin/python3
"""matrix_test.py: kneebot's Matrix transport end to end.

The real bot binary (build/asan/kneebot for the first part, build/kneebot
for the restarts) against the homeserver double (tests/matrix/homeserver.py,
in this process, 127.0.0.1, a random port), with the real matrix-nio
client as the human.  Every check prints "ok - ..." or "not ok - ...".
"""

import asyncio
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "matrix"))

from homeserver import Homeserver  # noqa: E402

from nio import RoomMessageNotice, RoomVisibility  # noqa: E402

from harness import (CHATTER, QUESTION, QUESTIONS, WAIT, Bot, bot_replies, bots, check, failed,  # noqa: E402
                     finish, human, new_room, say, wait_reply)

async def part_behaviour(hs, tmp, bot_id, alice, carol, otherbot):
    """Invites, answers, silence, typing, receipts, DMs; the ASan build."""
    early = (await alice.room_create(invite=[bot_id])).room_id
    await alice.sync(timeout=0)
    before = await say(alice, early, QUESTIONS[2])
    bot = Bot(tmp, hs, bot_id, binary="build/asan/kneebot",
              extra="auto_join_from = @alice:localhost, example.org\nadmins = @alice:localhost\n"
                    "ignore = @carol:localhost\n").start()
    try:
        check(hs.wait_for(lambda: hs.rooms[early].membership(bot_id) == "join", WAIT) is not None,
              "an invite waiting from before the first start is accepted")
        after = await say(alice, early, QUESTIONS[3])
        check(len(wait_reply(hs, bot_id, early, after)) == 1 and not bot_replies(hs, bot_id, early, before),
              "a question from before the bot's first start is never answered; the next one is")
        rid, joined = await new_room(hs, alice, bot_id)
        check(joined, "invited by an allowed user, the bot joins the room")
        await alice.room_invite(rid, otherbot.user_id)
        check(getattr(await otherbot.join(rid), "room_id", None) == rid, "another bot joins the room")

        q = await say(alice, rid, QUESTION)
        rep = wait_reply(hs, bot_id, rid, q)
        check(len(rep) == 1, "ambient knee question answered once")
        c = rep[0]["content"] if rep else {}
        check(c.get("msgtype") == "m.notice", "the answer is an m.notice")
        check(c.get("m.mentions", {}).get("user_ids") == [alice.user_id], "the answer mentions the asker (m.mentions)")
        check(c.get("format") == "org.matrix.custom.html" and "<ul>" in c.get("formatted_body", "")
              and "band" in c.get("body", ""), "plain body and HTML formatted_body with a list")
        resp = await alice.sync(timeout=3000)
        seen = [e for e in resp.rooms.join.get(rid).timeline.events if isinstance(e, RoomMessageNotice)] \
            if rid in resp.rooms.join else []
        check(any(e.source["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == q for e in seen),
              "nio receives the notice as a rich reply to the question (m.in_reply_to)")
        check(hs.wait_for(lambda: (rid, bot_id, q) in hs.receipts, 5) is not None,
              "a read receipt for the answered message")
        typing = [t for r, u, t in hs.typing if r == rid and u == bot_id]
        check(typing[:1] == [True] and False in typing, "typing notice on while answering, then off")

        chat = await say(alice, rid, CHATTER)
        notice = await say(otherbot, rid, None, {"msgtype": "m.notice", "body": QUESTION})
        q2 = await say(alice, rid, "Kneebot: what do you do?")
        rep2 = wait_reply(hs, bot_id, rid, q2)
        check(len(rep2) == 1 and "knee" in rep2[0]["content"]["body"],
              "addressed by display name: answered (a hint)")
        check(not bot_replies(hs, bot_id, rid, chat), "chatter is not answered")
        check(not bot_replies(hs, bot_id, rid, notice), "another bot's m.notice is not answered")

        q3 = await say(alice, rid, None, {"msgtype": "m.text", "body": "@kneebot:localhost what do you do?",
                                          "m.mentions": {"user_ids": [bot_id]}})
        check(len(wait_reply(hs, bot_id, rid, q3)) == 1, "addressed through m.mentions: answered")
        q4 = await say(alice, rid, "!help")
        rep4 = wait_reply(hs, bot_id, rid, q4)
        check(len(rep4) == 1 and "exercise" in rep4[0]["content"]["body"], "a !help command is answered")
        edit = await say(alice, rid, None, {
            "msgtype": "m.text", "body": "* " + QUESTIONS[1],
            "m.new_content": {"msgtype": "m.text", "body": QUESTIONS[1]},
            "m.relates_to": {"rel_type": "m.replace", "event_id": chat}})
        q5 = await say(alice, rid, None, {
            "msgtype": "m.text", "body": "> <@kneebot:localhost> earlier answer\n\nthanks, and why does it hurt?",
            "m.relates_to": {"m.in_reply_to": {"event_id": rep[0]["event_id"] if rep else "$x"}}})
        check(len(wait_reply(hs, bot_id, rid, q5)) == 1, "a reply to the bot's answer counts as addressed")
        check(not bot_replies(hs, bot_id, rid, edit), "an edit (m.replace) is not answered")
        own = [e for e in hs.room_events(rid, "m.room.message") if e["sender"] == bot_id]
        check(not any(bot_replies(hs, bot_id, rid, e["event_id"]) for e in own), "the bot never answers itself")

        dm = (await alice.room_create(invite=[bot_id], is_direct=True)).room_id
        check(hs.wait_for(lambda: hs.rooms[dm].membership(bot_id) == "join", WAIT) is not None,
              "DM invite accepted")
        await alice.sync(timeout=0)
        d1 = await say(alice, dm, "hello there")
        check(len(wait_reply(hs, bot_id, dm, d1)) == 1, "in a DM any message is addressed (answered)")
        await alice.room_leave(dm)
        check(hs.wait_for(lambda: hs.rooms[dm].membership(bot_id) == "leave", WAIT) is not None,
              "the bot leaves a room where it is alone")

        await alice.room_invite(rid, carol.user_id)
        await carol.join(rid)
        ignored = await say(carol, rid, QUESTIONS[0])
        q6 = await say(alice, rid, "!status")
        rep6 = wait_reply(hs, bot_id, rid, q6)
        check(rep6 and "@kneebot:localhost on http://127.0.0.1" in rep6[0]["content"]["body"]
              and "syncing" in rep6[0]["content"]["body"], "!status describes the Matrix network")
        check(not bot_replies(hs, bot_id, rid, ignored), "a user on the ignore list is not answered")
        pub = (await alice.room_create(alias="runners", visibility=RoomVisibility.public)).room_id
        q7 = await say(alice, rid, "!join test #runners:localhost")
        wait_reply(hs, bot_id, rid, q7)
        check(hs.wait_for(lambda: hs.rooms[pub].membership(bot_id) == "join", WAIT) is not None,
              "!join with a room alias: the bot joins")
        q7b = await say(alice, rid, "!leave test " + pub)
        wait_reply(hs, bot_id, rid, q7b)
        check(hs.wait_for(lambda: hs.rooms[pub].membership(bot_id) == "leave", WAIT) is not None,
              "!leave with a room id: the bot leaves")

        rc_room = (await carol.room_create(invite=[bot_id])).room_id
        check(hs.wait_for(lambda: hs.rooms[rc_room].membership(bot_id) == "leave", WAIT) is not None,
              "an invite from a user not in auto_join_from is declined")

        q8 = await say(alice, rid, QUESTIONS[1])
        bot.reload("typing = no\n")   # while the answer to q8 may be in flight
        ok = hs.wait_for(lambda: "test: matrix network started by reload" in bot.log(), WAIT)
        q9 = await say(alice, rid, QUESTIONS[2])
        check(ok and len(wait_reply(hs, bot_id, rid, q9)) == 1 and len(wait_reply(hs, bot_id, rid, q8)) == 1
              and bot.proc.poll() is None, "SIGHUP with a changed section: the network restarts on the same store")

        second = Bot(tmp, hs, bot_id).start()
        rc2 = second.proc.wait(timeout=20)
        check(rc2 == 78 and "in use by another kneebot process" in second.log(),
              "a second process on the same store refuses to start (exit 78)")
    finally:
        rc = bot.stop()
    log = bot.log()
    check(rc == 0 and "ERROR: AddressSanitizer" not in log and "ERROR: LeakSanitizer" not in log
          and "runtime error" not in log, "the ASan+UBSan build ran the above and stopped cleanly")
    check(not re.search(r"<[3-6]>.*(outer side|kneecap|band syndrome)", log),
          "no message text in the log at info level or above")
    return rid


async def part_restart(hs, tmp, bot_id, alice, rid):
    """Questions asked while the bot is down are answered once; older ones never again."""
    bot = Bot(tmp, hs, bot_id).start()
    q0 = await say(alice, rid, QUESTIONS[0])
    check(len(wait_reply(hs, bot_id, rid, q0)) == 1, "restarted bot answers a new question")
    bot.stop()
    con = sqlite3.connect(bot.db)   # as if the bot had first started a day ago
    con.execute("UPDATE meta SET value = ? WHERE key = 'history_before_ms'", (str(int(time.time() * 1000) - 86400000),))
    con.commit()
    con.close()
    missed = [await say(alice, rid, q) for q in QUESTIONS[1:]]
    stale = hs.inject(rid, alice.user_id, "m.room.message", {"msgtype": "m.text", "body": QUESTIONS[0]},
                      ts=int(time.time() * 1000) - 7 * 3600 * 1000)
    bot.start(console=True)
    for q in missed:
        wait_reply(hs, bot_id, rid, q)
    time.sleep(1.0)
    counts = [len(bot_replies(hs, bot_id, rid, q)) for q in [q0] + missed]
    check(counts == [1] * len(counts), "messages sent while the bot was down answered once each, "
          "answered ones never again (%s)" % counts)
    check(not bot_replies(hs, bot_id, rid, stale) and "older than catch_up_s" in bot.log(),
          "a missed message older than catch_up_s (6 h) is not answered")

    # the server hands an answered question over again (as after a gappy sync): no second answer
    with hs.cond:
        ev = hs._render(hs.event_index[q0], bot_id, None)
        token = hs._token(hs.pos, hs.td_pos, hs.dl_pos)
    hs.queue_raw_sync(bot_id, json.dumps({"next_batch": token, "rooms": {"join": {rid: {
        "timeline": {"events": [ev], "limited": True, "prev_batch": "p0"}}}}}).encode())
    q = await say(alice, rid, QUESTIONS[2])
    wait_reply(hs, bot_id, rid, q)
    check(len(bot_replies(hs, bot_id, rid, q0)) == 1, "an answered question delivered again is not answered again")

    # more missed than one sync holds (the bot's filter keeps 50 a room): the rest is read from /messages,
    # from a server that pages 8 at a time and filters some events out of its pages, as Synapse may
    bot.stop()
    gap = [hs.inject(rid, alice.user_id, "m.room.message",
                     {"msgtype": "m.text", "body": QUESTIONS[i % len(QUESTIONS)]}) for i in range(70)]
    with hs.cond:
        hs.hidden, hs.messages_cap = set(gap[4:12]), 8
    pages = hs.request_count(bot_id, "/messages")
    hs.fault(user=bot_id, path="/messages", kind="500", count=2)   # and the server stumbles on the first tries
    bot.start({"KNEEBOT_CRASH_POINT": "gap-before-commit"})        # and the bot dies applying its first page
    try:
        bot.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    crashed = "crash point gap-before-commit reached" in bot.log()
    bot.kill()
    bot.start(console=True)
    want = gap[20:] + gap[12:20] + gap[:4]
    hs.wait_for(lambda: all(bot_replies(hs, bot_id, rid, q) for q in want), 60)
    time.sleep(1.0)
    counts = [len(bot_replies(hs, bot_id, rid, q)) for q in gap]
    check(crashed and counts == [1] * 4 + [0] * 8 + [1] * 58 and hs.request_count(bot_id, "/messages") > pages + 3,
          "70 questions missed while down, more than a sync holds: the gap is read from /messages (two 500s, "
          "a crash mid-page, a page the server filtered empty) and each visible one answered once (%s)" % counts)
    order = [e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] for e in hs.room_events(rid, "m.room.message")
             if e["sender"] == bot_id and e["content"].get("m.relates_to", {}).get("m.in_reply_to", {})
             .get("event_id") in set(gap)]
    check(order == want, "answered in order: the sync's last 50, then the gap's pages, newest page first")
    with hs.cond:
        hs.hidden, hs.messages_cap = set(), None
    return bot


async def part_errors(hs, tmp, bot_id, alice, rid, bot):
    """429 storms, 500s, lost answers, dropped syncs, a sync that keeps failing."""
    hs.fault(user=bot_id, path="/send/", kind="429", count=4, retry_after_ms=300)
    hs.fault(user=bot_id, path="/send/", kind="500", count=2)
    hs.fault(user=bot_id, path="/send/", kind="process_then_500", count=1)
    hs.fault(user=bot_id, path="/send/", kind="process_then_drop", count=1)
    t0 = time.time()
    qs = [await say(alice, rid, q) for q in QUESTIONS[:3]]
    for q in qs:
        wait_reply(hs, bot_id, rid, q, 30)
    time.sleep(1.0)
    counts = [len(bot_replies(hs, bot_id, rid, q)) for q in qs]
    check(counts == [1, 1, 1], "429 storm, 500s and answers lost after the server took them: "
          "each question answered exactly once (%s)" % counts)
    check(time.time() - t0 >= 4 * 0.3, "429 retry_after_ms honoured (the storm took at least 4 x 300 ms)")

    hs.fault(user=bot_id, path="/send/", kind="429", count=1, retry_after_ms=100, retry_after_s=2)
    t1 = time.time()
    q = await say(alice, rid, QUESTIONS[3])
    ok = wait_reply(hs, bot_id, rid, q, 30)
    check(ok and time.time() - t1 >= 1.9, "429 waits the larger of Retry-After (2 s) and retry_after_ms")

    # a 429 pauses the sends only: the sync goes on and fetches the next question meanwhile
    hs.fault(user=bot_id, path="/send/", kind="429", count=1, retry_after_ms=2500)
    fault = hs.faults[-1]
    qa = await say(alice, rid, QUESTIONS[1])
    hs.wait_for(lambda: fault["count"] == 0, WAIT)   # the send of qa got its 429
    t3 = time.time()
    qb = await say(alice, rid, QUESTIONS[2])
    ok = wait_reply(hs, bot_id, rid, qa, 30) and wait_reply(hs, bot_id, rid, qb, 30)
    with hs.cond:
        sends = [t for t, u, _m, p in hs.requests if u == bot_id and "/send/" in p and t > t3]
        syncs = [t for t, u, _m, p in hs.requests if u == bot_id and p.startswith("/sync") and t > t3]
    check(ok and sends and syncs and syncs[0] < sends[0],
          "while sends wait out a 429, the sync goes on (a sync came before the send resumed)")

    for kind in ("truncate", "drop"):
        hs.fault(user=bot_id, path="/sync", kind=kind, count=1)
        q = await say(alice, rid, QUESTIONS[0])
        wait_reply(hs, bot_id, rid, q, 30)
        time.sleep(0.3)
        check(len(bot_replies(hs, bot_id, rid, q)) == 1,
              "connection dropped mid-sync (%s): the question is still answered, once" % kind)

    hs.fault(user=bot_id, path="/sync", kind="500", count=1000)
    q = await say(alice, rid, QUESTIONS[1])   # wakes the long-poll so the failures start now
    t2 = time.time()
    mark = len(bot.log())
    bot.proc.stdin.write(b"!redflags\n")
    bot.proc.stdin.flush()
    time.sleep(4.5)
    n = hs.request_count(bot_id, "/sync", t2)
    check("Stop running and get the knee examined" in bot.log()[mark:],
          "while Matrix sync fails, another transport (the console) still answers")
    hs.clear_faults()
    check(1 <= n <= 5, "a sync that keeps failing backs off instead of looping (%d tries in 4.5 s)" % n)
    check(len(wait_reply(hs, bot_id, rid, q, 30)) == 1, "after the failures end, the waiting question is answered")


async def part_relogin(hs, tmp, bot_id, alice, rid, bot):
    """Soft logout: log in again with the same device; hard logout: a new device."""
    logins = len([x for x in hs.logins if x[0] == bot_id])
    dev = [x for x in hs.logins if x[0] == bot_id][-1][1]
    hs.invalidate_tokens(bot_id, soft_logout=True)
    q = await say(alice, rid, QUESTIONS[2])
    check(len(wait_reply(hs, bot_id, rid, q, 30)) == 1, "after token invalidation (soft logout) the bot answers")
    after = [x for x in hs.logins if x[0] == bot_id]
    check(len(after) == logins + 1 and after[-1][1] == dev and after[-1][2] == dev,
          "soft logout: logged in again with the password and the stored device_id")
    hs.invalidate_tokens(bot_id, soft_logout=False)
    q = await say(alice, rid, QUESTIONS[3])
    check(len(wait_reply(hs, bot_id, rid, q, 30)) == 1, "after a hard logout the bot logs in and answers")
    after = [x for x in hs.logins if x[0] == bot_id]
    check(after[-1][2] is None and after[-1][1] != dev and "LOGGED OUT" in bot.log(),
          "hard logout: a new device, with a loud warning")

    # the server no longer knows our sync position (a restored database): 400 M_INVALID_PARAM every time
    bot.stop()
    con = sqlite3.connect(bot.db)
    con.execute("UPDATE meta SET value = 'not-a-token' WHERE key = 'next_batch'")
    con.commit()
    con.close()
    down = await say(alice, rid, QUESTIONS[0])
    mark = "starting over from what it holds now"
    bot.start()
    hs.wait_for(lambda: "sync batch of" in bot.log().partition(mark)[2], 60)   # its sync without position
    q = await say(alice, rid, QUESTIONS[1])
    check(len(wait_reply(hs, bot_id, rid, q, 30)) == 1 and mark in bot.log(),
          "a sync position the server keeps refusing: after five 400s the bot starts over and answers again")
    check(len(wait_reply(hs, bot_id, rid, down, 10)) == 1,
          "... and what was asked while it was down, still in the server's answer, is answered once")
    bot.stop()


async def part_encrypted(hs, tmp, bot_id, alice, carol):
    """nio's end-to-end encryption through the double; the bot with encryption = no stays silent there."""
    bot = Bot(tmp, hs, bot_id).start()
    enc = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
    rid = (await alice.room_create(invite=[carol.user_id, bot_id], initial_state=[enc])).room_id
    await carol.join(rid)
    joined = hs.wait_for(lambda: hs.rooms[rid].membership(bot_id) == "join", WAIT)
    await alice.sync(timeout=0)
    await carol.sync(timeout=0)
    r = await alice.room_send(rid, "m.room.message", {"msgtype": "m.text", "body": QUESTION},
                              ignore_unverified_devices=True)
    got = None
    for _ in range(10):
        resp = await carol.sync(timeout=1000)
        room = getattr(resp, "rooms", None) and resp.rooms.join.get(rid)
        for ev in (room.timeline.events if room else []):
            if getattr(ev, "event_id", None) == r.event_id:
                got = ev
        if got:
            break
    check(getattr(got, "body", None) == QUESTION and hs.room_events(rid, "m.room.encrypted"),
          "the double carries nio's keys/query, keys/claim and to-device: carol decrypts alice's message")
    time.sleep(1.0)
    mine = [e for e in hs.room_events(rid) if e["sender"] == bot_id and e["type"] in ("m.room.message",
                                                                                      "m.room.encrypted")]
    check(joined and not mine and "are not read: encryption = no" in bot.log(),
          "in an encrypted room the bot with encryption = no joins, says it cannot read, and never posts plaintext")
    bot.stop()


async def part_token(hs, tmp, alice):
    """access_token_file: a rejected token is a clear error and no busy loop."""
    user = hs.add_user("tokenbot", "tpw")
    tok = await human(hs, tmp, "tokenbot", "tpw")
    token = tok.access_token
    await tok.close()
    bot = Bot(tmp, hs, user, name="tok", secret=token, secret_key="access_token_file").start()
    ok = hs.wait_for(lambda: hs.request_count(user, "/sync") >= 1, WAIT)
    check(ok is not None, "access_token_file: the bot syncs with the given token")
    hs.invalidate_tokens(user, soft_logout=True)
    rid = (await alice.room_create(invite=[user])).room_id   # wakes its long-poll
    time.sleep(3)
    t0 = time.time()
    time.sleep(3)
    n = hs.request_count(user, "", t0)
    log = bot.log()
    check("access token was rejected" in log and "access_token_file" in log,
          "a rejected access token without a password is a clear error")
    check(n <= 2 and bot.proc.poll() is None, "... and the bot neither busy-loops nor exits (%d requests in 3 s)" % n)
    bot.stop()
    return rid


def db_consistent(path):
    con = sqlite3.connect(path)
    try:
        ok = con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ver = con.execute("PRAGMA user_version").fetchone()[0]
        con.execute("SELECT count(*) FROM outbox").fetchone()
        return ok and ver >= 2
    finally:
        con.close()


async def part_sigkill(hs, tmp, bot_id, alice, rid):
    """SIGKILL twenty times, at random and at each crash point; never a lost or double answer."""
    points = ["sync-before-commit", "sync-after-commit", "send-before-put", "send-after-put"]
    rng = random.Random(4)
    bot = Bot(tmp, hs, bot_id)
    asked = []
    consistent = True
    for i in range(20):
        point = points[(i // 2) % 4] if i % 2 == 0 else None
        bot.start({"KNEEBOT_CRASH_POINT": point} if point else None)
        asked.append(await say(alice, rid, QUESTIONS[i % len(QUESTIONS)] + " (%d)" % i))
        if point:
            try:
                bot.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(rng.uniform(0.0, 0.4))
        bot.kill()
        consistent &= db_consistent(bot.db)
    check(consistent, "state database consistent after each of 20 SIGKILLs (integrity_check, schema)")
    bot.start()
    for q in asked:
        wait_reply(hs, bot_id, rid, q, 30)
    time.sleep(1.5)
    counts = [len(bot_replies(hs, bot_id, rid, q)) for q in asked]
    check(all(c == 1 for c in counts), "after 20 SIGKILLs every question answered exactly once (%s)" % counts)
    con = sqlite3.connect(bot.db)
    left = con.execute("SELECT count(*) FROM outbox").fetchone()[0]
    con.close()
    check(left == 0, "the outbox is empty once everything was sent")
    st = os.stat(bot.db)
    check(st.st_mode & 0o077 == 0 and os.stat(bot.db + "-wal").st_mode & 0o077 == 0,
          "state files are mode 0600")
    bot.stop()


def part_config(tmp, hs):
    conf = os.path.join(tmp, "bad.conf")
    with open(conf, "w") as f:
        f.write("[matrix.a]\nhomeserver = ftp://x\nuser_id = kneebot\npassword_file = nope\n"
                "access_token_file = nope2\ncolour = blue\nrooms = lobby\nauto_join = maybe\n")
    p = subprocess.run([os.path.join(ROOT, "build/kneebot"), "--check-config", conf], capture_output=True, text=True)
    err = p.stderr
    check(p.returncode == 78 and all(s in err for s in (
        "unknown key 'colour'", "homeserver", "user_id", "exactly one of password_file", "rooms: 'lobby'",
        "auto_join = 'maybe'")), "bad [matrix.NAME] keys are reported with their lines, exit 78")


async def main():
    tmp = tempfile.mkdtemp(prefix="kneebot-matrix-")
    hs = Homeserver()
    hs.start()
    clients = []
    try:
        bot_id = hs.add_user("kneebot", "botpw", "Kneebot")
        hs.add_user("alice", "alicepw", "Alice")
        hs.add_user("carol", "carolpw", "Carol")
        hs.add_user("otherbot", "otherpw", "Other Bot")
        alice = await human(hs, tmp, "alice", "alicepw")
        carol = await human(hs, tmp, "carol", "carolpw")
        otherbot = await human(hs, tmp, "otherbot", "otherpw")
        clients = [alice, carol, otherbot]
        part_config(tmp, hs)
        rid = await part_behaviour(hs, tmp, bot_id, alice, carol, otherbot)
        bot = await part_restart(hs, tmp, bot_id, alice, rid)
        await part_errors(hs, tmp, bot_id, alice, rid, bot)
        await part_relogin(hs, tmp, bot_id, alice, rid, bot)
        await part_sigkill(hs, tmp, bot_id, alice, rid)
        await part_encrypted(hs, tmp, bot_id, alice, carol)
        await part_token(hs, tmp, alice)
    finally:
        for b in bots:
            b.kill()
        for c in clients:
            await c.close()
        hs.stop()
        finish(tmp)


if __name__ == "__main__":
    t0 = time.time()
    asyncio.run(main())
    print("# matrix suite took %.1f s" % (time.time() - t0))
    sys.exit(1 if failed() else 0)
