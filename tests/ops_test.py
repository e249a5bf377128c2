#!/usr/bin/python3
"""ops_test.py: what an admin relies on to install, run, reload and trust kneebot.

The systemd unit (security rating, known directives, exit codes that stop a
restart loop), the manual pages (render without warnings, cover every option,
exit status, environment variable and config key), the example config,
`make install` into a temp DESTDIR, --check-config on good and broken files,
the command line, and the running bot (console transport) seen through a
NOTIFY_SOCKET of our own: READY, RELOADING with MONOTONIC_USEC, READY,
STOPPING, WATCHDOG; SIGHUP with a good and a broken config, SIGTERM, SIGINT;
log prefixes and no message text in the log.  Prints "ok - " / "not ok - ".
"""
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "kneebot")
ASAN_BIN = os.path.join(ROOT, "build", "asan", "kneebot")
UNIT = os.path.join(ROOT, "systemd", "kneebot.service")
EXAMPLE = os.path.join(ROOT, "config", "kneebot.conf")
MAN8 = os.path.join(ROOT, "doc", "kneebot.8")
MAN5 = os.path.join(ROOT, "doc", "kneebot.conf.5")
MANPAGES = [MAN8, MAN5, os.path.join(ROOT, "doc", "QUIRKS.7")]
MAX_EXPOSURE = 2.0
# A knee question whose rarer words must never reach the log at the default level.
QUESTION = "my knee hurts on the outside after long parkrun downhill sessions"
SECRET_WORDS = ["parkrun", "downhill", QUESTION]

failures = 0
procs = []


def check(cond, what):
    global failures
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        failures += 1
    return cond


def note(text):
    for line in str(text).splitlines()[:15]:
        print("#   " + line, flush=True)


def run(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(argv, **kw)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def source_exit_codes():
    """The EXIT_* enum of bot/main.c: name -> number."""
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"\b(EXIT_[A-Z]+)\s*=\s*(\d+)", read(os.path.join(ROOT, "bot", "main.c")))}


# ---------------------------------------------------------------- the unit

def exposure(unit_path, label):
    r = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", unit_path])
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\S+)", r.stdout)
    if not check(r.returncode == 0 and m is not None, label + ": systemd-analyze security rates it"):
        note(r.stdout[-800:] + r.stderr)
        return
    level = float(m.group(1))
    check(level <= MAX_EXPOSURE and m.group(2) == "OK",
          "%s: exposure %.1f %s, at most %.1f and OK" % (label, level, m.group(2), MAX_EXPOSURE))
    return level


def unit_directives(text):
    d = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            d.setdefault(m.group(1), []).append(m.group(2))
    return d


def test_unit(tmp):
    exposure(UNIT, "systemd/kneebot.service")
    text = read(UNIT)
    d = unit_directives(text)
    want = {"Type": "notify", "DynamicUser": "yes", "StateDirectory": "kneebot",
            "ConfigurationDirectory": "kneebot", "Restart": "on-failure",
            "ExecReload": "/bin/kill -HUP $MAINPID", "NoNewPrivileges": "yes",
            "MemoryDenyWriteExecute": "yes", "PrivateDevices": "yes",
            "ProtectKernelTunables": "yes", "CapabilityBoundingSet": "",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX"}
    wrong = {k: d.get(k) for k, v in want.items() if d.get(k) != [v]}
    check(not wrong, "unit: Type=notify, ExecReload=SIGHUP, DynamicUser, directories, sandbox as asked%s"
          % (": " + str(wrong) if wrong else ""))
    check(d.get("ExecStart", [""])[0].endswith("/kneebot --config /etc/kneebot/kneebot.conf"),
          "unit: ExecStart= runs kneebot with /etc/kneebot/kneebot.conf")
    check(re.match(r"^\d+s$", d.get("WatchdogSec", [""])[0]) is not None, "unit: WatchdogSec= is set")
    check(any(f.startswith("@system-service") for f in d.get("SystemCallFilter", [])),
          "unit: system calls limited to @system-service")
    check(re.search(r"^#LoadCredential=\S+:/etc/kneebot/", text, re.M) is not None,
          "unit: commented LoadCredential= examples for the secret files")
    codes = source_exit_codes()
    prevent = set(d.get("RestartPreventExitStatus", [""])[0].split())
    need = {str(codes[k]) for k in ("EXIT_USAGE", "EXIT_DATAERR", "EXIT_CONFIG") if k in codes}
    check(len(need) == 3 and need <= prevent and str(codes.get("EXIT_OSERR")) not in prevent,
          "unit: RestartPreventExitStatus= holds main.c's usage, data and config codes %s, not OS error"
          % sorted(need))
    # every directive known to this systemd: verify needs an executable that exists
    copy = os.path.join(tmp, "kneebot.service")
    write(copy, re.sub(r"^ExecStart=\S+/kneebot", "ExecStart=" + BIN, text, flags=re.M))
    r = run(["systemd-analyze", "verify", "--man=no", copy], cwd=tmp)
    out = (r.stdout + r.stderr).strip()
    if not check(r.returncode == 0 and out == "", "unit: systemd-analyze verify finds nothing to say"):
        note(out)


# ---------------------------------------------------------------- manuals

def man_sections(path):
    return re.findall(r"^\.Sh (.+)$", read(path), re.M)


def test_manuals():
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    for page in MANPAGES:
        name = os.path.relpath(page, ROOT)
        r = run(["man", "--warnings=all", "-l", page], env=env)
        check(r.returncode == 0 and r.stderr == "" and len(r.stdout) > 500,
              "%s renders with man -l, no warnings" % name) or note(r.stderr)
        r = run(["mandoc", "-Tlint", "-Wwarning", page])
        check(r.returncode == 0 and (r.stdout + r.stderr).strip() == "",
              "%s: mandoc -Tlint has no warnings" % name) or note(r.stdout + r.stderr)

    secs = man_sections(MAN8)
    want = ["SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS", "ENVIRONMENT", "FILES", "EXIT STATUS",
            "SEE ALSO", "STANDARDS", "SECURITY CONSIDERATIONS"]
    check(all(s in secs for s in want), "kneebot.8 has the sections %s" % ", ".join(want))
    page = read(MAN8)
    main_c = read(os.path.join(ROOT, "bot", "main.c"))
    options = re.findall(r'\{ "([a-z-]+)", (?:no|required)_argument', main_c)
    missing = [o for o in options if not re.search(r"^\.It Fl (?:\w , )?-%s\b" % re.escape(o), page, re.M)]
    check(options and not missing, "kneebot.8 documents every long option of main.c (%d)%s"
          % (len(options), ": missing " + ", ".join(missing) if missing else ""))
    status = page[page.index(".Sh EXIT STATUS"):page.index(".Sh EXAMPLES")]
    codes = source_exit_codes()
    missing = [k for k, v in codes.items() if not re.search(r"^\.It %d$" % v, status, re.M)]
    check(codes and not missing, "kneebot.8 EXIT STATUS lists every code of main.c %s%s"
          % (sorted(codes.values()), ": missing " + ", ".join(missing) if missing else ""))
    env_sec = page[page.index(".Sh ENVIRONMENT"):page.index(".Sh FILES")]
    used = set()
    for f in os.listdir(os.path.join(ROOT, "bot")):
        if f.endswith(".c"):
            used |= set(re.findall(r'getenv\("([A-Z_]+)"\)', read(os.path.join(ROOT, "bot", f))))
    used |= {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}   # read by sd_notify(3)
    missing = sorted(v for v in used if not re.search(r"\bEv %s\b" % v, env_sec))
    check(not missing, "kneebot.8 ENVIRONMENT names every variable the bot reads (%s)%s"
          % (", ".join(sorted(used)), ": missing " + ", ".join(missing) if missing else ""))
    for s in ("RFC 1459", "RFC 2812", "Client-Server API", "Olm", "Megolm", "ircv3.net"):
        check(s in page, "kneebot.8 STANDARDS cites %s" % s)
    for s in ("deprecated", "July 2024", "vodozemac", "CVE-2024-45191", "CVE-2024-45192",
              "CVE-2024-45193", "bot/crypto.c"):
        check(s in page, "kneebot.8 is plain about libolm: %s" % s)


# ---------------------------------------------------------------- keys

def example_keys():
    """section kind -> keys shown in config/kneebot.conf, set or commented out."""
    keys, kind = {}, None
    for line in read(EXAMPLE).splitlines():
        m = re.match(r"^;?\[(bot|irc|matrix)[.\]]", line)
        if m:
            kind = m.group(1)
            continue
        m = re.match(r"^(?:;|#   )?([a-z_]+) = ", line)
        if m and kind:
            keys.setdefault(kind, set()).add(m.group(1))
    return keys


def man5_keys():
    """section kind -> keys with an entry in kneebot.conf.5 (overrides included)."""
    page = read(MAN5)
    keys = {}
    for kind, title in (("bot", "[bot]"), ("irc", "[irc.NAME]"), ("matrix", "[matrix.NAME]")):
        start = page.index(".Sh THE %s SECTION" % title)
        end = page.index("\n.Sh ", start + 1)
        sec = page[start:end]
        ks = set(re.findall(r"^\.It Ic ([a-z_]+)", sec, re.M))
        ks |= set(re.findall(r"^\.It Ic [a-z_]+ Ns = Ns Ar \S+ , Ic ([a-z_]+)", sec, re.M))
        intro = sec[:sec.index(".Bl")]
        ks |= set(re.findall(r"^\.Ic ([a-z_]+)", intro, re.M))   # "it may hold nick, prefix, ..."
        keys[kind] = ks
    return keys


def test_keys():
    config_c = read(os.path.join(ROOT, "bot", "config.c"))
    block = re.search(r"bot_keys\[\] = \{(.*?)\};", config_c, re.S).group(1)
    bot_keys = set(re.findall(r'"([a-z_]+)"', block))
    ex, man = example_keys(), man5_keys()
    check(bot_keys and bot_keys == man["bot"],
          "kneebot.conf.5 documents exactly the [bot] keys of config.c (%d)" % len(bot_keys)) or \
        note("config.c only: %s; man only: %s" % (bot_keys - man["bot"], man["bot"] - bot_keys))
    for kind in ("bot", "irc", "matrix"):
        e, m = ex.get(kind, set()), man[kind]
        check(e and e == m, "[%s] keys: config/kneebot.conf and kneebot.conf.5 show the same %d" % (kind, len(m))) \
            or note("example only: %s; man only: %s" % (sorted(e - m), sorted(m - e)))
    block = re.search(r"inline_secrets\[\] = \{(.*?)\};", config_c, re.S).group(1)
    refused = re.findall(r'"([a-z_]+)"', block)
    page = read(MAN5)
    check(refused and all(".Ic %s" % k in page for k in refused),
          "kneebot.conf.5 names every refused inline secret key (%s)" % ", ".join(refused))


# ---------------------------------------------------------------- command line

def test_example_config(tmp):
    r = run([BIN, "--check-config", EXAMPLE])
    check(r.returncode == 0 and "OK, 0 network(s)" in r.stdout,
          "config/kneebot.conf passes --check-config and connects nothing") or note(r.stdout + r.stderr)
    # Once a network type exists, its commented example section must be valid too.
    for kind, files in (("irc", ["libera.sasl"]), ("matrix", ["club.password", "club.pickle"])):
        probe = os.path.join(tmp, "probe.conf")
        write(probe, "[%s.x]\nhost = a\n" % kind)   # inih reports a section at its first key
        if "unknown network type" in run([BIN, "--check-config", probe]).stderr:
            print("# skip: [%s.NAME] example (no %s transport in this build yet)" % (kind, kind))
            continue
        lines, on = [], False
        for line in read(EXAMPLE).splitlines():
            if re.match(r"^;\[", line):
                on = line.startswith(";[%s." % kind)
            lines.append(line[1:] if on and line.startswith(";") else line)
        d = os.path.join(tmp, "example-" + kind)
        os.makedirs(d)
        for f in files:
            write(os.path.join(d, f), "x" * 40 + "\n")
            os.chmod(os.path.join(d, f), 0o600)
        write(os.path.join(d, "kneebot.conf"), "\n".join(lines) + "\n")
        r = run([BIN, "--check-config", os.path.join(d, "kneebot.conf")])
        check(r.returncode == 0 and "OK, 1 network(s)" in r.stdout,
              "config/kneebot.conf with its [%s.NAME] section uncommented passes --check-config" % kind) \
            or note(r.stdout + r.stderr)


def check_config_fails(tmp, name, text, status, pattern, what):
    path = os.path.join(tmp, name)
    write(path, text)
    r = run([BIN, "--check-config", path])
    ok = r.returncode == status and re.search(pattern, r.stderr, re.M) is not None
    check(ok, "--check-config, %s: exit %d with %s on stderr" % (what, status, pattern)) or \
        note("exit %d\n%s" % (r.returncode, r.stderr))
    return path


def broken_kb(tmp):
    kb = os.path.join(tmp, "responses")
    shutil.copytree(os.path.join(ROOT, "responses"), kb)
    with open(os.path.join(kb, "cues.ini"), "a", encoding="utf-8") as f:
        f.write("this line is not INI\n")
    return kb


# file, content, what stderr must say, what it shows
BROKEN_CONFIGS = [
    ("unknown.conf", "[bot]\nnick = kneebot\ncolour = blue\n", r"unknown\.conf:3: .*colour", "an unknown key"),
    ("syntax.conf", "[bot]\nnick = kneebot\nthis is not ini\n", r"syntax\.conf:3: ", "a syntax error"),
    ("secret.conf", "[bot]\n\nsasl_password = hunter2\n", r"secret\.conf:3: .*sasl_password_file", "an inline secret"),
    ("nick.conf", "[bot]\nadmins = alice\n", r"nick\.conf:2: .*admins entry 'alice'", "a bare nick in admins"),
    ("ignore.conf", "[bot]\nignore = mask:*@host\n", r"ignore\.conf:2: .*ignore entry", "a mask without nick!user@host"),
    ("range.conf", "[bot]\ncooldown_s = -5\n", r"range\.conf:2: .*cooldown_s", "a number out of range"),
    ("section.conf", "[bot]\n[telegram.x]\nhost = a\n", r"section\.conf:\d+: .*telegram", "an unknown network type"),
]


def test_check_config(tmp):
    codes = source_exit_codes()
    cfg, kbe = codes["EXIT_CONFIG"], codes["EXIT_DATAERR"]
    good = os.path.join(tmp, "good.conf")
    write(good, "[bot]\nprefix = ?\nadmins = account:alice, mask:*!*@club.example, @alice:example.org\n")
    r = run([BIN, "--check-config", good])
    check(r.returncode == 0 and r.stderr == "" and "OK" in r.stdout, "--check-config, a good file: exit 0, OK")
    for name, text, pattern, what in BROKEN_CONFIGS:
        check_config_fails(tmp, name, text, cfg, pattern, what)
    r = run([BIN, "--check-config", os.path.join(tmp, "secret.conf")])
    check("hunter2" not in r.stdout + r.stderr, "--check-config never prints the inline secret it refuses")
    r = run([BIN, "--check-config", os.path.join(tmp, "missing.conf")])
    check(r.returncode == cfg and "missing.conf" in r.stderr, "--check-config, a missing file: exit %d" % cfg)
    kb = broken_kb(tmp)
    check_config_fails(tmp, "kb.conf", "[bot]\nresponses_dir = %s\n" % kb, kbe,
                       r"cues\.ini:\d+: ", "a broken knowledge base in a copied responses/")
    # the same codes when starting for real, so the unit's RestartPreventExitStatus= applies
    r = run([BIN, "--config", os.path.join(tmp, "unknown.conf")], input="")
    check(r.returncode == cfg, "starting with a broken config exits %d" % cfg)
    r = run([BIN, "--config", os.path.join(tmp, "kb.conf")], input="")
    check(r.returncode == kbe, "starting with a broken knowledge base exits %d" % kbe)


def test_command_line():
    usage = source_exit_codes()["EXIT_USAGE"]
    version = re.search(r"^VERSION = (\S+)", read(os.path.join(ROOT, "Makefile")), re.M).group(1)
    r = run([BIN, "--version"])
    check(r.returncode == 0 and r.stdout.strip() == "kneebot " + version, "--version prints kneebot %s" % version)
    r = run([BIN, "--help"])
    check(r.returncode == 0 and r.stdout.startswith("usage: kneebot") and "--check-config" in r.stdout,
          "--help prints the usage on stdout, exit 0")
    r = run([BIN, "--no-such-option"])
    check(r.returncode == usage and "usage:" in r.stderr, "a bad option: usage on stderr, exit %d" % usage)
    r = run([BIN, "--console", "stray"])
    check(r.returncode == usage, "a stray argument: exit %d" % usage)
    r = run([BIN, "--check-config", "--classify"])
    check(r.returncode == usage, "--check-config with --classify: exit %d" % usage)


# ---------------------------------------------------------------- make install

def test_install(tmp):
    dest = os.path.join(tmp, "dest")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = run(["make", "--no-print-directory", "-C", ROOT, "install", "DESTDIR=" + dest, "PREFIX=/usr"],
            env=env, timeout=300)
    if not check(r.returncode == 0, "make install DESTDIR=... PREFIX=/usr"):
        note(r.stdout[-600:] + r.stderr[-600:])
        return
    want = ["usr/bin/kneebot", "usr/share/kneebot/responses/cues.ini", "usr/share/kneebot/kneebot.conf.example",
            "usr/share/kneebot/QUIRKS.7", "etc/kneebot/kneebot.conf", "usr/share/man/man8/kneebot.8",
            "usr/share/man/man5/kneebot.conf.5", "usr/lib/systemd/system/kneebot.service"]
    missing = [w for w in want if not os.path.isfile(os.path.join(dest, w))]
    check(not missing, "installed: binary, responses/, example and /etc config, man pages, unit%s"
          % (": missing " + ", ".join(missing) if missing else ""))
    conf = os.path.join(dest, "etc/kneebot/kneebot.conf")
    check(os.path.exists(conf) and os.stat(conf).st_mode & 0o004,
          "installed config is readable by the unit's DynamicUser (it holds no secrets)")
    unit = os.path.join(dest, "usr/lib/systemd/system/kneebot.service")
    if os.path.exists(unit):
        check(re.search(r"^ExecStart=/usr/bin/kneebot --config /etc/kneebot/kneebot.conf$", read(unit), re.M)
              is not None, "installed unit runs /usr/bin/kneebot")
        exposure(unit, "installed unit")
    exe = os.path.join(dest, "usr/bin/kneebot")
    kb = os.path.join(dest, "usr/share/kneebot/responses")
    r = run([exe, "--check-config", conf])
    check(r.returncode == 0 and "knowledge base %s: OK" % kb in r.stdout,
          "installed binary finds its installed knowledge base") or note(r.stdout + r.stderr)
    r = run([exe, "--console", "--config", conf], input=QUESTION + "\n")
    expect = run([BIN, "--classify"], input=json.dumps({"text": QUESTION, "addressed": True}) + "\n")
    answer = json.loads(expect.stdout).get("text") if expect.returncode == 0 else None
    check(r.returncode == 0 and answer and r.stdout.strip() == answer.strip(),
          "installed binary answers a knee question on the console (as --classify says it should)") \
        or note(r.stdout + r.stderr)
    os.rename(kb, kb + ".gone")
    r = run([exe, "--check-config", conf])
    check(r.returncode == source_exit_codes()["EXIT_DATAERR"],
          "installed binary without its knowledge base: exit 65 (it used the installed one)")
    os.rename(kb + ".gone", kb)
    r = run(["make", "--no-print-directory", "-C", ROOT, "uninstall", "DESTDIR=" + dest, "PREFIX=/usr"], env=env)
    left = sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs)
    check(r.returncode == 0 and left == ["etc/kneebot/kneebot.conf"],
          "make uninstall removes everything but the admin's /etc/kneebot/kneebot.conf") or note(left)


# ---------------------------------------------------------------- the running bot

class Bot:
    """The bot on a pipe for stdin/stdout, stderr to a file, and our own NOTIFY_SOCKET."""

    def __init__(self, tmp, conf, env=None, binary=None, wrap_pid=False):
        self.sock_path = os.path.join(tmp, "notify.sock")
        if os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.log_path = os.path.join(tmp, "bot.log")
        self.log = open(self.log_path, "w")
        e = {k: v for k, v in os.environ.items()
             if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")}
        e["NOTIFY_SOCKET"] = self.sock_path
        e.update(env or {})
        argv = [binary or BIN, "--console", "--config", conf]
        if wrap_pid:   # WATCHDOG_PID must be the bot's own pid: sh's $$ survives exec
            argv = ["/bin/sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"', "sh"] + argv
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=e)
        procs.append(self.p)
        os.set_blocking(self.p.stdout.fileno(), False)
        self.out = b""
        self.notes = []

    def notify(self, want, timeout=10):
        """Waits for a datagram containing the line want; returns it or None."""
        end = time.monotonic() + timeout
        while True:
            for n in self.notes:
                if want in n.split("\n"):
                    self.notes.remove(n)
                    return n
            left = end - time.monotonic()
            if left <= 0:
                return None
            if select.select([self.sock], [], [], left)[0]:
                self.notes.append(self.sock.recv(4096).decode())

    def drain_notes(self, seconds):
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if select.select([self.sock], [], [], left)[0]:
                self.notes.append(self.sock.recv(4096).decode())
        return self.notes

    def say(self, line):
        self.out = b""
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def expect(self, text, timeout=10):
        end = time.monotonic() + timeout
        while text.encode() not in self.out and time.monotonic() < end:
            if select.select([self.p.stdout], [], [], max(0, end - time.monotonic()))[0]:
                chunk = self.p.stdout.read()
                if not chunk:
                    break
                self.out += chunk
        return text.encode() in self.out

    def quiet(self, seconds):
        """Reads whatever comes within seconds (to show that nothing does)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if select.select([self.p.stdout], [], [], left)[0]:
                chunk = self.p.stdout.read()
                if not chunk:
                    break
                self.out += chunk
        return self.out

    def wait(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def logtext(self):
        self.log.flush()
        return read(self.log_path)

    def log_has(self, pattern, timeout=10):
        """The log is written after READY=1 goes out, so it may lag."""
        end = time.monotonic() + timeout
        while re.search(pattern, self.logtext(), re.M) is None:
            if time.monotonic() > end:
                return False
            time.sleep(0.05)
        return True

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.sock.close()
        self.log.close()


def monotonic_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def test_reload_and_signals(tmp):
    binary = ASAN_BIN if os.access(ASAN_BIN, os.X_OK) else BIN   # leaks on reload fail the exit status
    # build/asan/kneebot does not find ../responses by itself: name it
    kb = "responses_dir = %s\n" % os.path.join(ROOT, "responses")
    conf = os.path.join(tmp, "run.conf")
    write(conf, "[bot]\nprefix = !\n" + kb)
    bot = Bot(tmp, conf, binary=binary, env={"JOURNAL_STREAM": "8:12345"})
    try:
        check(bot.notify("READY=1") is not None, "NOTIFY_SOCKET gets READY=1 at start")
        bot.say(QUESTION)
        answered = bot.expect("Not a diagnosis")
        check(answered, "the console answers a knee question")
        first_line = bot.out.decode().split("\n")[0]
        bot.say("?help")
        check(b"Commands:" not in bot.quiet(1.0), "before reload, ?help is no command")

        write(conf, "[bot]\nprefix = ?\n" + kb)
        t0 = monotonic_usec()
        bot.p.send_signal(signal.SIGHUP)
        n = bot.notify("RELOADING=1")
        m = re.search(r"^MONOTONIC_USEC=(\d+)$", n or "", re.M)
        check(m is not None and t0 <= int(m.group(1)) <= monotonic_usec(),
              "SIGHUP: RELOADING=1 with MONOTONIC_USEC from CLOCK_MONOTONIC") or note(repr(n))
        check(bot.notify("READY=1") is not None, "SIGHUP: READY=1 after the reload")
        bot.say("?help")
        check(bot.expect("Commands:"), "after reload with a good config, the new prefix ?help works")

        write(conf, "[bot]\nprefix = !\nno_such_key = 1\n" + kb)
        bot.p.send_signal(signal.SIGHUP)
        check(bot.notify("RELOADING=1") is not None and bot.notify("READY=1") is not None,
              "SIGHUP, broken config: RELOADING=1 then READY=1")
        check(bot.log_has(r"^<4>.*run\.conf:3: .*no_such_key") and bot.log_has("keeping the running configuration"),
              "SIGHUP, broken config: the file and line logged as a warning, old config kept") or note(bot.logtext())
        bot.say("?help")
        check(bot.expect("Commands:") and bot.p.poll() is None,
              "SIGHUP, broken config: the bot still runs on the old config (?help answered)")

        write(conf, "[bot]\nprefix = ?\nresponses_dir = %s\n" % broken_kb(os.path.join(tmp, "kb2")))
        bot.p.send_signal(signal.SIGHUP)
        bot.notify("READY=1")
        bot.say(QUESTION)
        check(bot.expect("Not a diagnosis") and bot.log_has(r"^<4>.*cues\.ini:\d+: "),
              "SIGHUP, broken knowledge base: logged with file:line, the old one still answers")

        bot.p.send_signal(signal.SIGTERM)
        check(bot.notify("STOPPING=1") is not None, "SIGTERM: STOPPING=1 sent")
        rc = bot.wait(5)
        check(rc == 0, "SIGTERM: the bot exits 0 within 5 s%s"
              % (" (under ASan and LeakSanitizer)" if binary == ASAN_BIN else "")) or note("exit %r" % rc)
        check(not any("WATCHDOG=1" in n for n in bot.drain_notes(0.2)),
              "no WATCHDOG=1 without WATCHDOG_USEC")
        log = bot.logtext()
        lines = [l for l in log.splitlines() if l]
        check(lines and all(re.match(r"^<[3-7]>\S", l) for l in lines),
              "with JOURNAL_STREAM set, every log line has an sd-daemon <N> prefix") or note(log)
        leaked = [w for w in SECRET_WORDS + [first_line] if w in log]
        check(answered and not leaked, "no message text or answer in the log at the default level") \
            or note(leaked)
    finally:
        bot.close()

    write(conf, "[bot]\n")
    bot = Bot(tmp, conf)
    try:
        bot.notify("READY=1")
        bot.p.send_signal(signal.SIGINT)
        check(bot.notify("STOPPING=1") is not None, "SIGINT: STOPPING=1 sent")
        check(bot.wait(5) == 0, "SIGINT: the bot exits 0 within 5 s")
    finally:
        bot.close()


def test_watchdog(tmp):
    conf = os.path.join(tmp, "wd.conf")
    write(conf, "[bot]\n")
    bot = Bot(tmp, conf, env={"WATCHDOG_USEC": "400000"}, wrap_pid=True)
    try:
        bot.notify("READY=1")
        pings = [n for n in bot.drain_notes(1.5) if n == "WATCHDOG=1"]
        check(len(pings) >= 3, "WATCHDOG_USEC=400000 and our WATCHDOG_PID: WATCHDOG=1 every 200 ms (%d in 1.5 s)"
              % len(pings))
    finally:
        bot.close()
    bot = Bot(tmp, conf, env={"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"})
    try:
        bot.notify("READY=1")
        pings = [n for n in bot.drain_notes(1.0) if n == "WATCHDOG=1"]
        check(not pings, "WATCHDOG_PID of another process: no WATCHDOG=1")
    finally:
        bot.close()


def test_log_prefixes(tmp):
    """On a terminal the prefix is the program name, unless JOURNAL_STREAM says a journal listens."""
    conf = os.path.join(tmp, "tty.conf")
    write(conf, "[bot]\n")
    for journal, pattern, what in ((False, r"^kneebot: \S", "kneebot: "), (True, r"^<6>\S", "<6>")):
        master, slave = pty.openpty()
        e = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET")}
        if journal:
            e["JOURNAL_STREAM"] = "8:12345"
        p = subprocess.Popen([BIN, "--console", "--config", conf], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=slave, env=e)
        procs.append(p)
        os.close(slave)
        p.wait(10)
        out = b""
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        lines = [l for l in out.decode().replace("\r", "").split("\n") if l]
        check(lines and all(re.match(pattern, l) for l in lines),
              "stderr a terminal, JOURNAL_STREAM %s: lines start with '%s'" % ("set" if journal else "unset", what)) \
            or note(out)


def main():
    for tool in ("systemd-analyze", "man", "mandoc", "make"):
        if not shutil.which(tool):
            check(False, "%s is installed (TEST_DEBS)" % tool)
    if not os.access(BIN, os.X_OK):
        check(False, "build/kneebot is built")
        return 1
    tmp = tempfile.mkdtemp(prefix="kneebot-ops.")
    try:
        for t in (test_unit, test_manuals, test_keys, test_example_config, test_check_config,
                  test_command_line, test_install, test_reload_and_signals, test_watchdog, test_log_prefixes):
            sub = os.path.join(tmp, t.__name__)
            os.makedirs(sub)
            args = (sub,) if t.__code__.co_argcount else ()
            try:
                t(*args)
            except Exception as e:   # one broken step must not hide the others
                check(False, "%s ran to the end: %s: %s" % (t.__name__, type(e).__name__, e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
