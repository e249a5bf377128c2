"""harness.py: what the Matrix suites share: the kneebot process on a config
in a temp dir, the matrix-nio human, and the "ok - ..." checks.

Imported by tests/matrix_test.py and tests/matrix_e2ee_test.py (and the benches)
with tests/matrix on sys.path.  Python standard library and matrix-nio.
"""

import json
import os
import shutil
import signal
import subprocess
import urllib.request

from nio import AsyncClient, AsyncClientConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

QUESTION = "my knee hurts on the outside after long runs, what could it be?"
QUESTIONS = [
    "my knee hurts on the outside after long runs, what could it be?",
    "pain below my kneecap when I jump, what is it?",
    "my knee aches at the front when I go down stairs, any idea why?",
    "sharp pain on the inside of my knee after running, what should I do?",
]
CHATTER = "nice run today everyone, see you thursday"
WAIT = 15.0

failures = 0
bots = []   # every Bot started, killed at the end whatever happened


def check(cond, what, detail=None):
    """One ok/not ok line; on failure, detail (what was seen) follows as a comment."""
    global failures
    if not cond:
        failures += 1
    print("%s - %s" % ("ok" if cond else "not ok", what), flush=True)
    if not cond and detail is not None:
        print("#   got: %r" % (detail,), flush=True)
    return cond


def failed():
    return failures


def finish(tmp, lines=25):
    """After a suite: the bots' last log lines when something failed, then the temp dir goes
    (KNEEBOT_KEEP_TMP keeps it after a failure)."""
    if failures:
        for f in sorted(os.listdir(tmp)):
            if f.startswith("bot-") and f.endswith(".log"):
                print("# --- %s (last lines)" % f)
                with open(os.path.join(tmp, f), errors="replace") as fh:
                    for line in fh.read().splitlines()[-lines:]:
                        print("# " + line)
    if failures and os.environ.get("KNEEBOT_KEEP_TMP"):
        print("# kept %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def call(hs, method, path, body=None, token=None):
    """One client-server request to the double, as a client without a library would make it."""
    req = urllib.request.Request(hs.url + "/_matrix/client/v3" + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    return json.loads(urllib.request.urlopen(req).read())


class Bot:
    """One kneebot process on a config in a temp dir."""

    def __init__(self, tmp, hs, user, name="test", binary="build/kneebot", extra="", secret=None,
                 secret_key="password_file", encryption=False):
        self.tmp, self.binary, self.proc = tmp, os.path.join(ROOT, binary), None
        bots.append(self)
        self.log_path = os.path.join(tmp, "bot-%s.log" % name)
        self.state = os.path.join(tmp, "state")
        self.db = os.path.join(self.state, "matrix-%s.db" % name)
        secret_path = os.path.join(tmp, "secret-%s" % name)
        with open(secret_path, "w") as f:
            f.write((secret or "botpw") + "\n")
        os.chmod(secret_path, 0o600)
        self.conf = os.path.join(tmp, "kneebot-%s.conf" % name)
        with open(self.conf, "w") as f:
            f.write("[bot]\nstate_dir = %s\nresponses_dir = %s\ncooldown_s = 0\nroom_max_per_min = 0\n"
                    "log_level = debug\n\n[matrix.%s]\nhomeserver = %s\nuser_id = %s\n%s = %s\n"
                    "%s%s" % (self.state, os.path.join(ROOT, "responses"), name, hs.url, user, secret_key,
                              secret_path, "pickle_key_file = pickle-%s\n" % name if encryption
                              else "encryption = no\n", extra))
        self.pickle_key = os.path.join(tmp, "pickle-%s" % name)

    def start(self, env=None, console=False):
        e = dict(os.environ)
        e.update(env or {})
        self.logf = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.binary, "--config", self.conf] + (["--console"] if console else []),
                                     stdin=subprocess.PIPE if console else subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf, env=e)
        return self

    def reload(self, extra):
        with open(self.conf, "a") as f:
            f.write(extra)
        self.proc.send_signal(signal.SIGHUP)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self):
        rc = None
        if self.proc:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None
        return rc

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def bot_replies(hs, bot, room_id, event_id):
    return [e for e in hs.room_events(room_id, "m.room.message") if e["sender"] == bot and
            e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == event_id]


def wait_reply(hs, bot, room_id, event_id, timeout=WAIT):
    return hs.wait_for(lambda: bot_replies(hs, bot, room_id, event_id), timeout) or []


async def human(hs, tmp, localpart, password):
    store = os.path.join(tmp, "nio-" + localpart)
    os.makedirs(store, exist_ok=True)
    c = AsyncClient(hs.url, "@%s:%s" % (localpart, hs.server_name), store_path=store,
                    config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True))
    r = await c.login(password, device_name="test " + localpart)
    assert getattr(r, "access_token", None), r
    await c.sync(timeout=0)
    if c.should_upload_keys:
        await c.keys_upload()
    return c


async def say(c, room_id, body, content=None):
    content = content or {"msgtype": "m.text", "body": body}
    if room_id not in c.rooms:
        await c.sync(timeout=0)
    r = await c.room_send(room_id, "m.room.message", content)
    assert getattr(r, "event_id", None), r
    return r.event_id


async def new_room(hs, c, bot, **kw):
    r = await c.room_create(invite=[bot], **kw)
    rid = r.room_id
    joined = hs.wait_for(lambda: hs.rooms[rid].membership(bot) == "join", WAIT)
    await c.sync(timeout=0)
    return rid, bool(joined)
