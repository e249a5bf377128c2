#!/usr/bin/python3
"""bench_irc.py: the IRC transport end to end on loopback, against InspIRCd
(its own flood limits raised).  Prints reply latency (p50/p99) with the
bot's flood control off and with its defaults, the bot's RSS, and its CPU
time per channel line while a flood of chatter passes.  Figures only, no
assertions; goals from issue 3 are printed beside them.

BENCH_IRC_QUESTIONS (default 300) questions with flood control off;
BENCH_IRC_LONE (default 200) lone questions with the defaults, each after
the bucket has refilled (about 2 s apart, so that run takes minutes);
BENCH_IRC_BASELINE (default 40) lone questions with flood control off and
server PINGs after the same idle gap, to show what waking up costs here;
BENCH_IRC_CHATTER (default 20000) lines of chatter."""
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import ircd  # noqa: E402

QUESTIONS = int(os.environ.get("BENCH_IRC_QUESTIONS", "300"))
LONE = int(os.environ.get("BENCH_IRC_LONE", "200"))
BASELINE = int(os.environ.get("BENCH_IRC_BASELINE", "40"))
CHATTER = int(os.environ.get("BENCH_IRC_CHATTER", "20000"))
TICK = os.sysconf("SC_CLK_TCK")

CHAT = [
    "morning all, anyone up for the long run on sunday?",
    "new trail shoes arrived, they look great",
    "the park loop was muddy today",
    "what pace are we doing for the tempo session?",
    "I'll bring the cones for the track night",
    "did anyone see the results from the 10k?",
    "coffee after the run at the usual place",
    "my watch died halfway through the intervals",
    "the hill reps nearly finished me off",
    "registration for the half marathon opens friday",
]


def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def rss_kib(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK   # utime + stime


def cpu_ns(pid):
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def config(h, flood):
    return """[bot]
nick = kneebot
state_dir = {dir}
log_level = info
cooldown_s = 0
room_max_per_min = 0

[irc.bench]
host = 127.0.0.1
port = {plain}
tls = no
channels = #bench
{flood}
""".format(dir=h.dir, flood=flood, **h.ports)


class Fast:
    """A raw client for timing: no parsing beyond what the bench needs."""

    def __init__(self, client):
        self.sock = client.sock
        self.sock.setblocking(True)
        self.buf = client.buf

    def send(self, line):
        self.sock.sendall(line.encode() + b"\r\n")

    def lines_until(self, pred, count, timeout=30):
        """Reads until `count` lines match pred; returns the arrival time of the first."""
        first, n = None, 0
        end = time.perf_counter() + timeout
        self.sock.settimeout(timeout)
        while n < count:
            while b"\n" not in self.buf:
                if time.perf_counter() > end:
                    raise TimeoutError("no reply")
                self.buf += self.sock.recv(65536)
            line, self.buf = self.buf.split(b"\n", 1)
            if line.startswith(b"PING"):
                self.send("PONG " + line.split(b" ", 1)[1].decode().strip())
            elif pred(line):
                n += 1
                if first is None:
                    first = time.perf_counter()
        return first


def from_bot(line):
    return line.startswith(b":kneebot!") and b" NOTICE " in line


def parallel(fns):
    out = [None] * len(fns)
    ts = [threading.Thread(target=lambda i=i, f=f: out.__setitem__(i, f())) for i, f in enumerate(fns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def start(h, name, flood):
    h.start_bot(name, "build/kneebot", config(h, flood))
    if not h.wait_log(name, "joined #bench", 20):
        raise RuntimeError("the bot did not join:\n" + h.bot_log(name)[-2000:])
    return h.procs[name].pid


def human(h, nick):
    c = ircd.Client(h.ports["plain"], nick, caps=())
    c.join("#bench")
    return c


def reply_lines(fast, question):
    fast.send("PRIVMSG #bench :" + question)
    # count the lines of one reply once, by quiet
    n, end = 0, time.perf_counter() + 5
    fast.sock.settimeout(0.5)
    while time.perf_counter() < end:
        try:
            data = fast.sock.recv(65536)
        except socket.timeout:
            break
        fast.buf += data
    for line in fast.buf.split(b"\n"):
        n += from_bot(line)
    fast.buf = b""
    return n


def latency_run(fast, question, count, gap=0.0):
    lines = reply_lines(fast, question)
    first, whole = [], []
    for _ in range(count):
        if gap:
            time.sleep(gap)
        t0 = time.perf_counter()
        fast.send("PRIVMSG #bench :" + question)
        t1 = fast.lines_until(from_bot, 1)
        first.append((t1 - t0) * 1000)
        if lines > 1:
            t2 = fast.lines_until(from_bot, lines - 1)
            whole.append((time.perf_counter() - t0) * 1000)
            del t2
    return lines, first, whole


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    h = ircd.Harness()
    try:
        h.make_certs()
        h.start_inspircd(with_atheme=False)
        question = "kneebot: my knee hurts on the outside after long runs, any idea?"

        # 1. flood control off: latency, idle RSS, chatter CPU
        pid = start(h, "bot", "flood_control = no")
        runner = human(h, "runner")
        # InspIRCd reads one client's burst slowly (about a buffer a second): ten chatterers, in turns
        chatters = [Fast(c) for c in parallel([lambda i=i: human(h, "chat%d" % i) for i in range(10)])]
        time.sleep(1.0)
        rss_idle, anon_idle = rss_kib(pid), rss_kib(pid, "RssAnon")
        fast = Fast(runner)
        lines, first, whole = latency_run(fast, question, QUESTIONS)
        print("flood control off, %d questions (%d-line answers):" % (QUESTIONS, lines))
        print("  first line  p50 %.3f ms  p99 %.3f ms  (goal p50 <= 0.7 ms, p99 <= 2 ms)" % (pct(first, 50), pct(first, 99)))
        if whole:
            print("  whole reply p50 %.3f ms  p99 %.3f ms" % (pct(whole, 50), pct(whole, 99)))

        cpu0, ns0 = cpu_s(pid), cpu_ns(pid)
        t0 = time.perf_counter()
        for i in range(CHATTER):
            chatters[i % len(chatters)].send("PRIVMSG #bench :%s (%d)" % (CHAT[i % len(CHAT)], i))
        sent = time.perf_counter()
        t_q = time.perf_counter()
        fast.send("PRIVMSG #bench :" + question)
        t_a = fast.lines_until(from_bot, 1, timeout=120)
        if lines > 1:
            fast.lines_until(from_bot, lines - 1)
        cpu1, ns1 = cpu_s(pid), cpu_ns(pid)
        print("chatter: %d lines sent in %.2f s" % (CHATTER, sent - t0))
        print("  bot CPU per line %.2f us (utime+stime from /proc/PID/stat; schedstat says %.2f us)  (goal <= 10 us)"
              % ((cpu1 - cpu0) * 1e6 / CHATTER, (ns1 - ns0) / 1e3 / CHATTER))
        print("  a question right after them answered in %.3f ms" % ((t_a - t_q) * 1000))
        # what 2 s of idleness costs on this machine, without any flood control: the baseline for run 2
        lines, lone_off, _ = latency_run(fast, "!about", BASELINE, gap=2.05)
        pings = []
        for _ in range(BASELINE):
            time.sleep(2.05)
            t0 = time.perf_counter()
            fast.send("PING :bench")
            fast.lines_until(lambda line: b" PONG " in line, 1)
            pings.append((time.perf_counter() - t0) * 1000)
        print("baseline after 2 s idle, %d samples each: lone question with flood control off p50 %.3f ms p99 %.3f ms;"
              % (BASELINE, pct(lone_off, 50), pct(lone_off, 99)))
        print("  the server's own PING round trip p50 %.3f ms p99 %.3f ms" % (pct(pings, 50), pct(pings, 99)))
        rss_after, anon_after = rss_kib(pid), rss_kib(pid, "RssAnon")
        print("RSS idle %.2f MiB, after %.2f MiB  (goal idle < 8 MiB with one network)" % (rss_idle / 1024, rss_after / 1024))
        print("  of which private (RssAnon) idle %.2f MiB, after %.2f MiB; the rest is shared library pages"
              % (anon_idle / 1024, anon_after / 1024))
        runner.close()
        h.stop("bot")

        # 2. the default flood control: lone questions, each after the bucket has refilled
        h.start_bot("bot2", "build/kneebot", config(h, ""))
        h.wait_log("bot2", "joined #bench", 20)
        runner = human(h, "runner2")
        fast = Fast(runner)
        lone_q = "!about"
        interval = 2.0 * reply_lines(fast, lone_q) + 0.05
        time.sleep(interval)
        lines, first, whole = latency_run(fast, lone_q, LONE, gap=interval)
        print("default flood control (burst 4, 1 line / 2 s), %d lone questions (%d-line answers, %.2f s apart):"
              % (LONE, lines, interval))
        print("  first line  p50 %.3f ms  p99 %.3f ms  (goal: within 5 ms)" % (pct(first, 50), pct(first, 99)))
        runner.close()
        h.stop("bot2")
    finally:
        h.close()


if __name__ == "__main__":
    main()
