#!/usr/bin/python3
"""bench_e2ee.py: the end-to-end encryption figures, from build/kneebot against the homeserver double.

1. Decrypt to reply encrypted, bot side: from the start of an encrypted
   question's Megolm decryption to its answer's ciphertext committed in the
   outbox (the answer composed, the room key already shared), as the bot
   logs it at debug level; 40 questions from a matrix-nio member.
2. Sharing a room key with 50 devices (10 users x 5 devices made with
   python-olm, plus the asker's), through the real send path: /keys/query,
   /keys/claim and 50 new Olm sessions (committed), then per device the
   m.room_key encrypted over Olm, the sessions and the to-device request
   committed in one transaction.  The room sets rotation_period_msgs = 1,
   so every answer shares a new key with every device; the first answer
   also claims the one-time keys.
"""

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "matrix"))
from homeserver import Homeserver  # noqa: E402
from harness import QUESTIONS, Bot, call, human  # noqa: E402

import olm  # noqa: E402
from nio.api import Api  # noqa: E402

ENC = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


def signed(acct, user, dev, obj):
    obj["signatures"] = {user: {"ed25519:" + dev: acct.sign(Api.to_canonical_json(obj))}}
    return obj


def olm_device(hs, user, password, dev):
    """A device made with python-olm: logged in, device keys and two one-time keys uploaded."""
    tok = call(hs, "POST", "/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                                       "password": password, "device_id": dev,
                                       "initial_device_display_name": dev})["access_token"]
    acct = olm.Account()
    idk = acct.identity_keys
    dk = signed(acct, user, dev, {"user_id": user, "device_id": dev,
                                   "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                                   "keys": {"curve25519:" + dev: idk["curve25519"], "ed25519:" + dev: idk["ed25519"]}})
    acct.generate_one_time_keys(2)
    otks = {"signed_curve25519:" + k: signed(acct, user, dev, {"key": v})
            for k, v in acct.one_time_keys["curve25519"].items()}
    call(hs, "POST", "/keys/upload", {"device_keys": dk, "one_time_keys": otks}, tok)
    return tok


def numbers(log, pattern):
    with open(log, errors="replace") as f:
        return [int(x) for x in re.findall(pattern, f.read())]


def summary(v, unit=1000.0):
    v = sorted(v)
    return "median %.2f ms, p90 %.2f ms, max %.2f ms (n=%d)" % (
        statistics.median(v) / unit, v[int(len(v) * 0.9)] / unit, v[-1] / unit, len(v))


async def answered(hs, bot, rid, q, timeout=30):
    return hs.wait_for(lambda: any(e["sender"] == bot and e["content"].get("m.relates_to", {}).get(
        "m.in_reply_to", {}).get("event_id") == q for e in hs.room_events(rid, "m.room.encrypted")), timeout)


async def main():
    tmp = tempfile.mkdtemp(prefix="kneebot-bench-e2ee-")
    hs = Homeserver()
    hs.start()
    alice = None
    bot = None
    try:
        bot_id = hs.add_user("kneebot", "botpw", "Kneebot")
        hs.add_user("alice", "alicepw", "Alice")
        alice = await human(hs, tmp, "alice", "alicepw")
        bot = Bot(tmp, hs, bot_id, encryption=True, extra="typing = no\nread_receipts = no\n").start()
        rid = (await alice.room_create(invite=[bot_id], initial_state=[ENC])).room_id
        if not hs.wait_for(lambda: hs.rooms[rid].membership(bot_id) == "join"
                           and any(v.get("keys") for v in hs.devices[bot_id].values()), 20):
            print("bench_e2ee: the bot did not join; log:\n" + bot.log()[-2000:])
            return 1
        await alice.sync(timeout=0)
        n = 40
        for i in range(n):
            r = await alice.room_send(rid, "m.room.message", {"msgtype": "m.text", "body": QUESTIONS[i % 4] + " (%d)" % i},
                                      ignore_unverified_devices=True)
            if not await answered(hs, bot_id, rid, r.event_id):
                print("bench_e2ee: question %d not answered" % i)
                return 1
            await alice.sync(timeout=0)
        time.sleep(0.3)
        lat = numbers(bot.log_path, r"reply to \S+ encrypted (\d+) us after its decryption began")
        put = numbers(bot.log_path, r"reply request started (\d+) us after its sync response arrived")
        print("decrypt -> reply encrypted and committed (bot side, %d answers): %s" % (len(lat), summary(lat)))
        print("  (sync response arrived -> reply PUT started, the same answers: %s)" % summary(put[-len(lat):]))

        # 50 more devices in a room whose key rotates with every message
        rot = dict(ENC, content={"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_msgs": 1})
        big = (await alice.room_create(invite=[bot_id], initial_state=[rot])).room_id
        hs.wait_for(lambda: hs.rooms[big].membership(bot_id) == "join", 20)
        atok = alice.access_token
        t0 = time.monotonic()
        for u in range(10):
            user = hs.add_user("runner%d" % u, "pw%d" % u)
            toks = [olm_device(hs, user, "pw%d" % u, "RUNNER%dDEV%d" % (u, d)) for d in range(5)]
            call(hs, "POST", "/rooms/%s/invite" % big, {"user_id": user}, atok)
            call(hs, "POST", "/rooms/%s/join" % big, {}, toks[0])
        setup = time.monotonic() - t0
        await alice.sync(timeout=0)
        shared_before = len(numbers(bot.log_path, r"shared with (\d+) devices"))
        rounds = 8
        for i in range(rounds):
            r = await alice.room_send(big, "m.room.message", {"msgtype": "m.text", "body": QUESTIONS[i % 4] + " [%d]" % i},
                                      ignore_unverified_devices=True)
            if not await answered(hs, bot_id, big, r.event_id, 60):
                print("bench_e2ee: question %d in the 50-device room not answered" % i)
                return 1
            await alice.sync(timeout=0)
        time.sleep(0.3)
        with open(bot.log_path, errors="replace") as f:
            shares = re.findall(r"room key of %s shared with (\d+) devices in (\d+) us" % re.escape(big), f.read())
        claims = numbers(bot.log_path, r"claimed one-time keys of 50 devices: 50 new Olm sessions in (\d+) us")
        put = numbers(bot.log_path, r"reply request started (\d+) us after its sync response arrived")[-rounds:]
        times = [int(t) for c, t in shares if int(c) >= 50]
        if not times:
            print("bench_e2ee: no share with 50 devices in the log")
            return 1
        print("sharing a room key with 50 (+1) devices: Olm-encrypt m.room_key for each, commit the sessions, "
              "shared marks and the to-device request: %s, %.3f ms per device" % (
                  summary(times), statistics.median(times) / 1000 / int(shares[-1][0])))
        if claims:
            print("  first answer: 50 one-time keys claimed and verified, 50 Olm sessions created and committed "
                  "in %.2f ms" % (claims[0] / 1000))
        print("  sync response arrived -> reply PUT started in that room (query, claim, share, to-device round "
              "trips to the double included): first %.1f ms, then %s" % (put[0] / 1000, summary(put[1:])))
        print("  (setting up 50 python-olm devices took %.1f s; %d shares before this room)" % (setup, shared_before))
        return 0
    finally:
        if bot:
            bot.stop()
        if alice:
            await alice.close()
        hs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    subprocess.run(["make", "-s", "-C", ROOT, "build/kneebot"], check=True)
    sys.exit(asyncio.run(main()))
