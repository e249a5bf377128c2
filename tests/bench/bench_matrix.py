#!/usr/bin/python3
"""bench_matrix.py: the Matrix transport's figures, from build/kneebot against the homeserver double.

1. Bot-side latency: from a /sync response having arrived (curl done) to the
   reply's PUT being started, as the bot logs it at debug level; 40 questions.
2. A 10 MB /sync response (240 busy rooms, 12000 messages judged by the
   responder, to-device and state events): the bot's time to apply it in
   one transaction, and its peak RSS (VmHWM) against the baseline.
"""

import json
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
from harness import call  # noqa: E402

QUESTIONS = [
    "my knee hurts on the outside after long runs, what could it be?",
    "pain below my kneecap when I jump, what is it?",
    "my knee aches at the front when I go down stairs, any idea why?",
    "sharp pain on the inside of my knee after running, what should I do?",
]
CHATTER = ("Great tempo session this morning, the hill reps were brutal but the coffee afterwards made up for it. "
           "Who is coming to the long run on Sunday? We meet at the park gate at eight, usual route, "
           "with a water stop at the bridge and an optional extra loop for the marathon people. ")


def vm(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
    return -1


def log_numbers(path, pattern):
    with open(path, errors="replace") as f:
        return [int(m.group(1)) for m in re.finditer(pattern, f.read())]


def big_sync(hs, since_pos, rooms=240, per_room=50):
    now = int(time.time() * 1000)
    join = {}
    n = 0
    for r in range(rooms):
        evs = []
        for e in range(per_room):
            n += 1
            evs.append({"type": "m.room.message", "sender": "@runner%d:localhost" % (e % 17), "event_id": "$bench%d" % n,
                        "origin_server_ts": now, "content": {"msgtype": "m.text", "body": "%s (%d)" % (CHATTER * 2, n)},
                        "unsigned": {"age": 5}})
        state = [{"type": "m.room.member", "state_key": "@runner%d:localhost" % i, "sender": "@runner%d:localhost" % i,
                  "event_id": "$m%d_%d" % (r, i), "origin_server_ts": now,
                  "content": {"membership": "join", "displayname": "Runner %d" % i}} for i in range(17)]
        join["!busy%d:localhost" % r] = {"timeline": {"events": evs, "limited": True, "prev_batch": "p1"},
                                        "state": {"events": state},
                                        "summary": {"m.joined_member_count": 18, "m.invited_member_count": 0}}
    td = [{"type": "m.room.encrypted", "sender": "@runner1:localhost",
           "content": {"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": "x" * 43,
                       "ciphertext": {"y" * 43: {"type": 0, "body": "z" * 400}}}} for _ in range(100)]
    body = {"next_batch": "s%d_0_0" % since_pos, "rooms": {"join": join, "invite": {}, "leave": {}},
            "to_device": {"events": td}, "device_lists": {"changed": ["@runner%d:localhost" % i for i in range(17)],
                                                       "left": []},
            "device_one_time_keys_count": {"signed_curve25519": 50}, "device_unused_fallback_key_types": []}
    return json.dumps(body).encode(), n


def main():
    binary = os.path.join(ROOT, "build", "kneebot")
    tmp = tempfile.mkdtemp(prefix="kneebot-bench-matrix-")
    hs = Homeserver()
    hs.start()
    proc = None
    try:
        bot = hs.add_user("kneebot", "botpw", "Kneebot")
        hs.add_user("alice", "alicepw", "Alice")
        with open(os.path.join(tmp, "pw"), "w") as f:
            f.write("botpw\n")
        os.chmod(os.path.join(tmp, "pw"), 0o600)
        conf = os.path.join(tmp, "k.conf")
        with open(conf, "w") as f:
            f.write("[bot]\nstate_dir = %s/state\nresponses_dir = %s/responses\ncooldown_s = 0\nroom_max_per_min = 0\n"
                    "log_level = debug\n[matrix.bench]\nhomeserver = %s\nuser_id = %s\npassword_file = pw\n"
                    "encryption = no\ntyping = no\nread_receipts = no\n" % (tmp, ROOT, hs.url, bot))
        log = os.path.join(tmp, "bot.log")
        proc = subprocess.Popen([binary, "--config", conf], stdin=subprocess.DEVNULL,
                                stdout=open(log, "w"), stderr=subprocess.STDOUT)
        tok = call(hs, "POST", "/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
                                          "password": "alicepw"})["access_token"]
        rid = call(hs, "POST", "/createRoom", {"invite": [bot]}, tok)["room_id"]
        if not hs.wait_for(lambda: hs.rooms[rid].membership(bot) == "join", 20):
            print("bench_matrix: the bot did not join; log:\n" + open(log).read()[-2000:])
            return 1

        n = 40
        rtt = []
        for i in range(n):
            t0 = time.monotonic()
            eid = call(hs, "PUT", "/rooms/%s/send/m.room.message/b%d" % (rid, i),
                       {"msgtype": "m.text", "body": QUESTIONS[i % 4] + " (%d)" % i}, tok)["event_id"]
            hs.wait_for(lambda: any(e["sender"] == bot and e["content"].get("m.relates_to", {}).get(
                "m.in_reply_to", {}).get("event_id") == eid for e in hs.room_events(rid, "m.room.message")), 20)
            rtt.append((time.monotonic() - t0) * 1000)
        time.sleep(0.3)
        lat = log_numbers(log, r"reply request started (\d+) us after its sync response arrived")
        if len(lat) < n // 2:
            print("bench_matrix: only %d latency lines in the log" % len(lat))
            return 1
        lat.sort()
        print("sync response arrived -> reply PUT started (bot side, %d answers): median %.2f ms, p90 %.2f ms, "
              "max %.2f ms" % (len(lat), statistics.median(lat) / 1000, lat[int(len(lat) * 0.9)] / 1000, lat[-1] / 1000))
        print("  (question PUT -> answer stored at the server, whole loop incl. long-poll wake-up: median %.1f ms)"
              % statistics.median(rtt))

        base_rss, base_hwm = vm(proc.pid, "VmRSS"), vm(proc.pid, "VmHWM")
        body, nmsg = big_sync(hs, hs.pos)
        before = len(log_numbers(log, r"sync batch of (\d+) bytes"))
        syncs = hs.request_count(bot, "/sync")
        t0 = time.monotonic()
        hs.queue_raw_sync(bot, body)
        # the bot has applied it when it asks for the next batch
        hs.wait_for(lambda: hs.request_count(bot, "/sync") >= syncs + 2, 120)
        wall = (time.monotonic() - t0) * 1000
        sizes = log_numbers(log, r"sync batch of (\d+) bytes")
        times = log_numbers(log, r"sync batch of \d+ bytes applied in (\d+) us")
        big = [t for s, t in zip(sizes[before:], times[before:]) if s == len(body)]
        hwm = vm(proc.pid, "VmHWM")
        if not big:
            print("bench_matrix: the big batch was not applied; log tail:\n" + open(log).read()[-1500:])
            return 1
        print("10 MB sync response (%.1f MB, %d rooms, %d messages judged, 100 to-device): applied in %.0f ms "
              "(parse, judge, store, one COMMIT); %.0f ms from handing it over to the next /sync"
              % (len(body) / 1e6, len(json.loads(body)["rooms"]["join"]), nmsg, big[0] / 1000, wall))
        print("  peak RSS %d MB (VmHWM; %d MB before: RSS %d MB)" % (hwm, base_hwm, base_rss))
        return 0
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        hs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
