#!/usr/bin/python3
"""homeserver.py: an in-memory Matrix homeserver test double.

Python standard library only (run with /usr/bin/python3).  It speaks the
client-server API for every endpoint kneebot and matrix-nio use, under both
/_matrix/client/v3 (the bot) and /_matrix/client/r0 (nio 0.20), with the
spec's error shapes: {"errcode", "error"}, 401 M_MISSING_TOKEN /
M_UNKNOWN_TOKEN (with soft_logout), 403 M_FORBIDDEN, 404/405 M_UNRECOGNIZED,
429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After, 413 M_TOO_LARGE.
/sync long-polls until something happens or its timeout passes.

Use it in-process (tests import it):

    hs = Homeserver(); hs.start()            # 127.0.0.1, a random free port
    alice = hs.add_user("alice", "pw")      # "@alice:localhost"
    hs.fault(user=bot, path="/send/", kind="429", count=3, retry_after_ms=200)
    hs.invalidate_tokens(bot, soft_logout=True)
    hs.stop()

or standalone (`homeserver.py [--port N]` prints "port N"), controlled with
POST /_test/<control> carrying JSON (see Handler.test_controls).

End-to-end encryption, as the design note's section 8 asks: keys/upload
refuses a reused one-time key id with new content (400, as Synapse);
keys/query returns cross-signing keys and unsigned display names;
keys/claim hands out one-time keys in upload order, then the fallback key
(marked used); device_signing/upload wants user-interactive auth when keys
exist or require_uia_for_xsign is set (a server before spec v1.11);
signatures/upload merges signatures and flags device_lists.changed;
sendToDevice is idempotent per txnId.  To-device events stay queued until a
later since acknowledges them and are never delivered after a room event
sent later.  Controls: hold_to_device_for (delay a user's to-device
events), send_to_device (inject one), inject (replay or move an event),
force_limited, delete_device, key_uploads, to_device_log, fallback_state.

Fault kinds: "429", "500", "soft_logout" (one 401 M_UNKNOWN_TOKEN with
soft_logout: true, the token stays valid), "drop" (close without answering), "truncate"
(headers and half the body, then close), "process_then_500" and
"process_then_drop" (the request takes effect, the answer is lost: a
retry must not duplicate it).
"""

import base64
import copy
import json
import re
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_EVENT_BYTES = 65536
DEFAULT_TIMELINE_LIMIT = 10
MAX_TO_DEVICE_PER_SYNC = 100


def now_ms():
    return int(time.time() * 1000)


class MatrixError(Exception):
    def __init__(self, status, errcode, error, **extra):
        super().__init__(error)
        self.status, self.errcode, self.error, self.extra = status, errcode, error, extra
        self.headers = {}

    def body(self):
        b = {"errcode": self.errcode, "error": self.error}
        b.update(self.extra)
        return b


def forbidden(msg):
    return MatrixError(403, "M_FORBIDDEN", msg)


def bad_json(msg):
    return MatrixError(400, "M_BAD_JSON", msg)


def not_found(msg):
    return MatrixError(404, "M_NOT_FOUND", msg)


class Event:
    """A room event and what the server knows about how it was sent."""

    def __init__(self, pos, room_id, ev, device=None, txn=None):
        self.pos, self.room_id, self.ev = pos, room_id, ev
        self.device, self.txn = device, txn
        self.prev_content = None
        self.redacted_because = None

    @property
    def key(self):
        return (self.ev["type"], self.ev.get("state_key"))


class Room:
    def __init__(self, room_id, version="10"):
        self.id, self.version = room_id, version
        self.events = []     # Event, in stream order
        self.state = {}      # (type, state_key) -> Event

    def state_at(self, pos):
        st = {}
        for e in self.events:
            if e.pos > pos:
                break
            if "state_key" in e.ev:
                st[e.key] = e
        return st

    def membership(self, user, pos=None):
        st = self.state if pos is None else self.state_at(pos)
        e = st.get(("m.room.member", user))
        return e.ev["content"].get("membership") if e else None

    def members(self, membership="join", pos=None):
        st = self.state if pos is None else self.state_at(pos)
        return sorted(k[1] for k, e in st.items()
                      if k[0] == "m.room.member" and e.ev["content"].get("membership") == membership)


def type_matches(filt, t):
    """RoomEventFilter types/not_types with '*' wildcards."""
    def match(pat, s):
        return re.fullmatch(re.escape(pat).replace(r"\*", ".*"), s) is not None
    if filt is None:
        return True
    if any(match(p, t) for p in filt.get("not_types", [])):
        return False
    types = filt.get("types")
    return types is None or any(match(p, t) for p in types)


class Homeserver:
    def __init__(self, server_name="localhost"):
        self.server_name = server_name
        self.cond = threading.Condition()
        self.users = {}          # user_id -> {"password", "displayname"}
        self.tokens = {}         # token -> (user_id, device_id)
        self.dead_tokens = {}    # token -> soft_logout flag
        self.devices = {}        # user_id -> {device_id: {...}}
        self.rooms = {}
        self.aliases = {}
        self.event_index = {}    # event_id -> Event
        self.pos = 0             # room event stream position
        self.txns = {}           # (user, device, method, path) -> (status, body)
        self.to_device = {}      # (user, device) -> [(td_pos, event, room pos when sent)]
        self.to_device_log = []  # (sender, sender device, user, device, type) of every to-device delivery queued
        self.key_uploads = []    # {"user", "device", "device_keys", "otks", "fallback", "status"}
        self.hold_to_device_for = set()   # users whose to-device events are held back
        self.td_pos = 0
        self.key_changes = []    # [(dl_pos, user_id)]
        self.dl_pos = 0
        self.xsign = {}          # user_id -> {"master": ..., "self_signing": ..., "user_signing": ...}
        self.filters = {}
        self.faults = []
        self.requests = []       # (time, user, method, path) of every request
        self.receipts = []       # (room, user, event_id)
        self.typing = []         # (room, user, typing)
        self.logins = []         # (user, device_id, requested device_id)
        self.raw_sync = {}       # user -> [raw bodies to answer the next syncs with]
        self.force_limited = set()
        self.hidden = set()             # event ids /messages fetches but filters out (history visibility)
        self.messages_cap = None        # a server's own cap on /messages' limit
        self.require_uia_for_xsign = False
        self.uia_sessions = set()
        self.hold_to_device = False
        self.httpd = None
        self.thread = None

    # ---------- lifecycle ----------

    def start(self, port=0):
        self.httpd = Server(("127.0.0.1", port), Handler)
        self.httpd.hs = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self.port

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            with self.cond:
                self.cond.notify_all()

    # ---------- test controls ----------

    def add_user(self, localpart, password, displayname=None):
        uid = "@%s:%s" % (localpart, self.server_name)
        with self.cond:
            self.users[uid] = {"password": password, "displayname": displayname}
            self.devices.setdefault(uid, {})
        return uid

    def fault(self, user=None, method=None, path="", kind="500", count=1, retry_after_ms=None,
              retry_after_s=None, body=None):
        """The next `count` requests of user (any when None) whose path contains `path` fail."""
        with self.cond:
            self.faults.append({"user": user, "method": method, "path": path, "kind": kind,
                                "count": count, "retry_after_ms": retry_after_ms,
                                "retry_after_s": retry_after_s, "body": body})

    def clear_faults(self):
        with self.cond:
            self.faults.clear()

    def invalidate_tokens(self, user, soft_logout=True):
        with self.cond:
            for tok, (u, _d) in list(self.tokens.items()):
                if u == user:
                    del self.tokens[tok]
                    self.dead_tokens[tok] = soft_logout

    def inject(self, room_id, sender, etype, content, state_key=None, ts=None):
        """An event as if sender had sent it (no checks); returns its event_id."""
        with self.cond:
            ev = {"type": etype, "sender": sender, "content": content}
            if state_key is not None:
                ev["state_key"] = state_key
            e = self._append(room_id, ev, ts=ts)
            return e.ev["event_id"]

    def queue_raw_sync(self, user, body):
        """The next /sync of user is answered with these bytes, whatever they are."""
        with self.cond:
            self.raw_sync.setdefault(user, []).append(body)
            self.cond.notify_all()

    def room_events(self, room_id, etype=None):
        with self.cond:
            r = self.rooms.get(room_id)
            return [copy.deepcopy(e.ev) for e in (r.events if r else [])
                    if etype is None or e.ev["type"] == etype]

    def all_events(self, etype=None, sender=None):
        with self.cond:
            return [copy.deepcopy(e.ev) for r in self.rooms.values() for e in r.events
                    if (etype is None or e.ev["type"] == etype) and (sender is None or e.ev["sender"] == sender)]

    def membership(self, room_id, user):
        with self.cond:
            r = self.rooms.get(room_id)
            return r.membership(user) if r else None

    def request_count(self, user=None, path="", since=0.0):
        with self.cond:
            return sum(1 for t, u, _m, p in self.requests
                       if t >= since and (user is None or u == user) and path in p)

    def wait_for(self, pred, timeout=10.0):
        """Waits until pred() (called under the lock) is true; returns its value or None."""
        end = time.time() + timeout
        with self.cond:
            while True:
                v = pred()
                if v:
                    return v
                left = end - time.time()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.2))

    def to_device_recipients(self):
        """(user, device) -> [event types] still queued for delivery."""
        with self.cond:
            return {k: [e["type"] for _p, e, _r in v] for k, v in self.to_device.items() if v}

    def send_to_device(self, sender, user, device, etype, content, sender_device=None):
        """A to-device event as if sender had sent it (no checks)."""
        with self.cond:
            self._queue_to_device(sender, sender_device, user, device, etype, content)
            self.cond.notify_all()

    def fallback_state(self, user, device):
        """signed_curve25519 fallback key of a device: (key id, used), or None."""
        with self.cond:
            fb = self.devices.get(user, {}).get(device, {}).get("fallback", {}).get("signed_curve25519")
            return (fb["id"], fb["used"]) if fb else None

    def delete_device(self, user, device):
        with self.cond:
            self.devices.get(user, {}).pop(device, None)
            for tok, w in list(self.tokens.items()):
                if w == (user, device):
                    del self.tokens[tok]
            self._device_changed(user)

    def release_to_device(self, user=None):
        with self.cond:
            if user is None:
                self.hold_to_device_for.clear()
            else:
                self.hold_to_device_for.discard(user)
            self.cond.notify_all()

    def otk_count(self, user, device):
        with self.cond:
            d = self.devices.get(user, {}).get(device)
            return len(d["otks"]) if d else 0

    # ---------- internals (called with the lock held) ----------

    def _id(self, sigil, n=18):
        s = base64.urlsafe_b64encode(secrets.token_bytes(n)).decode().rstrip("=")
        return sigil + s if sigil == "$" else "%s%s:%s" % (sigil, s, self.server_name)

    def _append(self, room_id, ev, device=None, txn=None, ts=None):
        room = self.rooms[room_id]
        self.pos += 1
        ev.setdefault("origin_server_ts", ts if ts is not None else now_ms())
        ev["room_id"] = room_id
        ev["event_id"] = self._id("$")
        e = Event(self.pos, room_id, ev, device, txn)
        if "state_key" in ev:
            prev = room.state.get(e.key)
            if prev:
                e.prev_content = prev.ev.get("content")
            room.state[e.key] = e
            if ev["type"] == "m.room.member":
                self._membership_changed(room, ev)
        room.events.append(e)
        self.event_index[ev["event_id"]] = e
        self.cond.notify_all()
        return e

    def _membership_changed(self, room, ev):
        # a new member's devices matter to everyone sharing the room (device_lists.changed)
        if ev["content"].get("membership") == "join":
            self.dl_pos += 1
            self.key_changes.append((self.dl_pos, ev["state_key"]))

    def _queue_to_device(self, sender, sender_device, user, device, etype, content):
        if device not in self.devices.get(user, {}):
            return
        self.td_pos += 1
        self.to_device.setdefault((user, device), []).append(
            (self.td_pos, {"type": etype, "sender": sender, "content": copy.deepcopy(content)}, self.pos))
        self.to_device_log.append((sender, sender_device, user, device, etype))

    def _device_changed(self, user):
        self.dl_pos += 1
        self.key_changes.append((self.dl_pos, user))
        self.cond.notify_all()

    def _fault_for(self, user, method, path):
        for f in self.faults:
            if f["count"] > 0 and (f["user"] is None or f["user"] == user) \
                    and (f["method"] is None or f["method"] == method) and f["path"] in path:
                f["count"] -= 1
                return dict(f)
        return None

    def _member_event(self, user, membership, sender, extra=None):
        content = {"membership": membership}
        if membership == "join":
            content["displayname"] = self.users.get(user, {}).get("displayname")
        if extra:
            content.update(extra)
        return {"type": "m.room.member", "state_key": user, "sender": sender, "content": content}

    # ---------- sync ----------

    def _token(self, ev_pos, td_pos, dl_pos):
        return "s%d_%d_%d" % (ev_pos, td_pos, dl_pos)

    def _parse_token(self, since):
        m = re.fullmatch(r"s(\d+)_(\d+)_(\d+)", since or "")
        if not m:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid since token")
        return tuple(int(x) for x in m.groups())

    def _render(self, e, user, device):
        ev = copy.deepcopy(e.ev)
        uns = {"age": max(0, now_ms() - ev["origin_server_ts"])}
        if e.txn is not None and e.device == (user, device):
            uns["transaction_id"] = e.txn
        if e.prev_content is not None:
            uns["prev_content"] = copy.deepcopy(e.prev_content)
        if e.redacted_because is not None:
            uns["redacted_because"] = copy.deepcopy(e.redacted_because)
        ev["unsigned"] = uns
        return ev

    def _stripped(self, e):
        return {k: copy.deepcopy(e.ev[k]) for k in ("type", "state_key", "sender", "content")}

    def _sync_room_join(self, room, user, device, since_pos, filt, newly, upto):
        rf = (filt or {}).get("room", {})
        tf, sf = rf.get("timeline"), rf.get("state")
        limit = (tf or {}).get("limit", DEFAULT_TIMELINE_LIMIT)
        lazy = bool((sf or {}).get("lazy_load_members"))
        start = 0 if newly else since_pos
        evs = [e for e in room.events if start < e.pos <= upto and type_matches(tf, e.ev["type"])]
        limited = len(evs) > limit or user in self.force_limited
        if len(evs) > limit:
            evs = evs[-limit:]
        if not evs and not newly:
            return None
        first = evs[0].pos if evs else upto + 1
        # state at the start of the timeline: all of it when newly joined, else what changed in the gap
        base = room.state_at(first - 1)
        if newly:
            state = list(base.values())
        else:
            then = room.state_at(since_pos)
            state = [e for k, e in base.items() if then.get(k) is not e]
        in_timeline = {e.ev["event_id"] for e in evs}
        state = [e for e in state if e.ev["event_id"] not in in_timeline and type_matches(sf, e.ev["type"])]
        if lazy:
            wanted = {e.ev["sender"] for e in evs} | {user}
            state = [e for e in state if e.ev["type"] != "m.room.member" or e.ev["state_key"] in wanted]
        joined, invited = room.members("join"), room.members("invite")
        heroes = [u for u in joined + invited if u != user][:5]
        return {
            "timeline": {"events": [self._render(e, user, device) for e in evs], "limited": limited,
                         "prev_batch": "p%d" % (first - 1)},
            "state": {"events": [self._render(e, user, device) for e in state]},
            "ephemeral": {"events": []},
            "account_data": {"events": []},
            "summary": {"m.joined_member_count": len(joined), "m.invited_member_count": len(invited),
                        "m.heroes": heroes},
            "unread_notifications": {"highlight_count": 0, "notification_count": 0},
        }

    def _sync_body(self, user, device, since, filt):
        ev_since, td_since, dl_since = self._parse_token(since) if since else (0, 0, 0)
        q = self.to_device.setdefault((user, device), [])
        q[:] = [m for m in q if m[0] > td_since]   # a later since acknowledges them
        held = self.hold_to_device or user in self.hold_to_device_for
        tdev = [] if held else q[:MAX_TO_DEVICE_PER_SYNC]
        # a to-device event left for the next batch holds back the room events sent after it
        upto = self.pos if held or len(q) <= len(tdev) else q[len(tdev)][2]
        rooms = {"join": {}, "invite": {}, "leave": {}}
        shared = set()
        for room in self.rooms.values():
            now = room.membership(user)
            then = room.membership(user, ev_since) if since else None
            if now == "join":
                shared.update(room.members("join"))
                r = self._sync_room_join(room, user, device, ev_since, filt, then != "join", upto)
                if r:
                    rooms["join"][room.id] = r
            elif now == "invite" and then != "invite":
                keep = ("m.room.create", "m.room.name", "m.room.encryption", "m.room.join_rules",
                        "m.room.canonical_alias", "m.room.avatar")
                st = [self._stripped(e) for k, e in room.state.items() if k[0] in keep]
                inv = room.state[("m.room.member", user)]
                st.append(self._stripped(room.state.get(("m.room.member", inv.ev["sender"]), inv)))
                st.append(self._stripped(inv))
                rooms["invite"][room.id] = {"invite_state": {"events": st}}
            elif now in ("leave", "ban") and then in ("join", "invite"):
                evs = [e for e in room.events if e.pos > ev_since]
                rooms["leave"][room.id] = {
                    "timeline": {"events": [self._render(e, user, device) for e in evs], "limited": False,
                                 "prev_batch": "p%d" % ev_since},
                    "state": {"events": []}}
        changed = sorted({u for p, u in self.key_changes if p > dl_since and (u in shared or u == user)})
        td_next = tdev[-1][0] if tdev else td_since
        d = self.devices.get(user, {}).get(device, {})
        counts = {}
        for kid in d.get("otks", {}):
            alg = kid.split(":", 1)[0]
            counts[alg] = counts.get(alg, 0) + 1
        counts.setdefault("signed_curve25519", 0)
        body = {
            "next_batch": self._token(upto, td_next, self.dl_pos),
            "rooms": rooms,
            "to_device": {"events": [copy.deepcopy(m[1]) for m in tdev]},
            "device_lists": {"changed": changed, "left": []},
            "device_one_time_keys_count": counts,
            "device_unused_fallback_key_types": sorted(
                alg for alg, fk in d.get("fallback", {}).items() if not fk["used"]),
            "presence": {"events": []},
            "account_data": {"events": []},
        }
        something = any(rooms[k] for k in rooms) or tdev or changed
        return body, bool(something)

    def sync(self, user, device, query):
        since = query.get("since")
        timeout = min(int(query.get("timeout", "0") or 0), 60000) / 1000.0
        filt = self._filter(user, query.get("filter"))
        end = time.time() + timeout
        with self.cond:
            while True:
                raw = self.raw_sync.get(user)
                if raw:
                    return raw.pop(0)
                body, something = self._sync_body(user, device, since, filt)
                if something or not since or time.time() >= end:
                    self.force_limited.discard(user)
                    return body
                self.cond.wait(max(0.0, min(end - time.time(), 1.0)))

    def _filter(self, user, f):
        if f is None:
            return None
        if f.startswith("{"):
            try:
                return json.loads(f)
            except ValueError:
                raise MatrixError(400, "M_INVALID_PARAM", "filter is not JSON")
        with self.cond:
            if (user, f) not in self.filters:
                raise MatrixError(400, "M_INVALID_PARAM", "unknown filter")
            return self.filters[(user, f)]


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # clients that vanish mid-request are part of the tests, not news
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True   # headers and body go out in two writes: no 40 ms delayed-ACK stalls
    server_version = "kneebot-test-homeserver/1"

    def log_message(self, fmt, *args):
        pass

    # ---------- plumbing ----------

    @property
    def hs(self):
        return self.server.hs

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_OPTIONS(self):
        self.reply(200, {})

    def read_body(self):
        raw = self.raw_body
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise MatrixError(400, "M_NOT_JSON", "Content not JSON.")
        if not isinstance(body, dict):
            raise MatrixError(400, "M_BAD_JSON", "Content must be a JSON object.")
        return body

    def reply(self, status, body, headers=None, truncate=False):
        data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if truncate:
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.drop()
            return
        self.wfile.write(data)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def auth(self, query):
        h = self.headers.get("Authorization", "")
        tok = h[7:] if h.startswith("Bearer ") else query.get("access_token")
        if not tok:
            raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token.")
        with self.hs.cond:
            if tok in self.hs.tokens:
                return self.hs.tokens[tok]
            soft = self.hs.dead_tokens.get(tok)
        if soft is None:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unrecognised access token.", soft_logout=False)
        raise MatrixError(401, "M_UNKNOWN_TOKEN", "Access token has expired", soft_logout=soft)

    def dispatch(self, method):
        # read the whole request first: an error answered early must not leave bytes for the next one
        n = int(self.headers.get("Content-Length") or 0)
        self.raw_body = self.rfile.read(n) if n else b""
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        raw_path = url.path
        try:
            if raw_path.startswith("/_test/"):
                self.reply(200, self.test_control(raw_path[7:], self.read_body()) or {})
                return
            m = re.match(r"^/_matrix/client/(?:v3|r0|v1)(/.*)$", raw_path)
            if raw_path == "/_matrix/client/versions":
                self.reply(200, {"versions": ["r0.6.1", "v1.1", "v1.5", "v1.7", "v1.11"], "unstable_features": {}})
                return
            if not m:
                raise MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
            segs = [urllib.parse.unquote(s) for s in m.group(1).split("/")[1:]]
            self.route(method, m.group(1), segs, query)
        except MatrixError as e:
            self.reply(e.status, e.body(), e.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    ROUTES = [
        ("GET", ["login"], "get_login", False),
        ("POST", ["login"], "post_login", False),
        ("POST", ["logout"], "post_logout", True),
        ("GET", ["account", "whoami"], "whoami", True),
        ("GET", ["sync"], "get_sync", True),
        ("POST", ["createRoom"], "create_room", True),
        ("POST", ["join", None], "join_alias", True),
        ("POST", ["rooms", None, "join"], "join_room", True),
        ("POST", ["rooms", None, "invite"], "invite", True),
        ("POST", ["rooms", None, "leave"], "leave", True),
        ("GET", ["rooms", None, "joined_members"], "joined_members", True),
        ("GET", ["rooms", None, "messages"], "messages", True),
        ("GET", ["rooms", None, "state"], "get_state", True),
        ("PUT", ["rooms", None, "send", None, None], "send", True),
        ("PUT", ["rooms", None, "state", None], "put_state", True),
        ("PUT", ["rooms", None, "state", None, None], "put_state", True),
        ("PUT", ["rooms", None, "redact", None, None], "redact", True),
        ("PUT", ["rooms", None, "typing", None], "put_typing", True),
        ("POST", ["rooms", None, "receipt", None, None], "post_receipt", True),
        ("POST", ["rooms", None, "read_markers"], "read_markers", True),
        ("GET", ["profile", None], "get_profile", False),
        ("GET", ["profile", None, "displayname"], "get_displayname", False),
        ("PUT", ["profile", None, "displayname"], "put_displayname", True),
        ("POST", ["user", None, "filter"], "post_filter", True),
        ("GET", ["user", None, "filter", None], "get_filter", True),
        ("PUT", ["sendToDevice", None, None], "send_to_device", True),
        ("POST", ["keys", "upload"], "keys_upload", True),
        ("POST", ["keys", "query"], "keys_query", True),
        ("POST", ["keys", "claim"], "keys_claim", True),
        ("POST", ["keys", "device_signing", "upload"], "device_signing_upload", True),
        ("POST", ["keys", "signatures", "upload"], "signatures_upload", True),
    ]

    def route(self, method, path, segs, query):
        matched_path = False
        for meth, pattern, name, needs_auth in self.ROUTES:
            if len(pattern) != len(segs) or any(p is not None and p != s for p, s in zip(pattern, segs)):
                continue
            matched_path = True
            if meth != method:
                continue
            who = self.auth(query) if needs_auth else (None, None)
            args = [s for p, s in zip(pattern, segs) if p is None]
            with self.hs.cond:
                self.hs.requests.append((time.time(), who[0], method, path))
                self.hs.cond.notify_all()   # tests wait on request counts too
                f = self.hs._fault_for(who[0], method, path)
            if f and self.apply_fault(f, before=True):
                return
            body = self.read_body() if method in ("POST", "PUT") else {}
            status, resp = 200, getattr(self, "h_" + name)(who, args, query, body, method, path)
            if isinstance(resp, tuple):
                status, resp = resp
            if f and f["kind"] == "truncate":
                self.reply(status, resp, truncate=True)
                return
            if f and self.apply_fault(f, before=False):
                return
            self.reply(status, resp)
            return
        if matched_path:
            raise MatrixError(405, "M_UNRECOGNIZED", "Unrecognized request")
        raise MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")

    def apply_fault(self, f, before):
        kind = f["kind"]
        if before and kind in ("429", "500", "drop", "soft_logout"):
            if kind == "drop":
                self.drop()
            elif kind == "soft_logout":
                e = MatrixError(401, "M_UNKNOWN_TOKEN", "Access token has expired", soft_logout=True)
                self.reply(401, e.body())
            elif kind == "429":
                extra = {}
                if f["retry_after_ms"] is not None:
                    extra["retry_after_ms"] = f["retry_after_ms"]
                e = MatrixError(429, "M_LIMIT_EXCEEDED", "Too Many Requests", **extra)
                if f["retry_after_s"] is not None:
                    e.headers["Retry-After"] = str(f["retry_after_s"])
                self.reply(429, e.body(), e.headers)
            elif kind == "500":
                self.reply(500, f["body"] or {"errcode": "M_UNKNOWN", "error": "Internal server error"})
            return True
        if not before and kind in ("process_then_500", "process_then_drop"):
            if kind == "process_then_drop":
                self.drop()
            else:
                self.reply(500, {"errcode": "M_UNKNOWN", "error": "Internal server error"})
            return True
        return False

    # ---------- test controls over HTTP (standalone use) ----------

    def test_control(self, name, b):
        hs = self.hs
        if name == "user":
            return {"user_id": hs.add_user(b["localpart"], b["password"], b.get("displayname"))}
        if name == "fault":
            hs.fault(**b)
            return {}
        if name == "invalidate":
            hs.invalidate_tokens(b["user_id"], b.get("soft_logout", True))
            return {}
        if name == "inject":
            return {"event_id": hs.inject(b["room_id"], b["sender"], b["type"], b["content"],
                                          b.get("state_key"), b.get("ts"))}
        if name == "raw_sync":
            hs.queue_raw_sync(b["user_id"], b["body"].encode())
            return {}
        if name == "events":
            return {"events": hs.all_events(b.get("type"), b.get("sender"))}
        if name == "hold_to_device":
            with hs.cond:
                hs.hold_to_device_for.add(b["user_id"])
            return {}
        if name == "release_to_device":
            hs.release_to_device(b.get("user_id"))
            return {}
        if name == "send_to_device":
            hs.send_to_device(b["sender"], b["user_id"], b["device_id"], b["type"], b["content"])
            return {}
        if name == "key_uploads":
            with hs.cond:
                return {"uploads": copy.deepcopy(hs.key_uploads)}
        raise MatrixError(404, "M_UNRECOGNIZED", "unknown control")

    # ---------- login ----------

    def h_get_login(self, who, args, q, b, method, path):
        return {"flows": [{"type": "m.login.password"}]}

    def h_post_login(self, who, args, q, b, method, path):
        if b.get("type") != "m.login.password":
            raise MatrixError(400, "M_UNKNOWN", "Unknown login type %s" % b.get("type"))
        ident = b.get("identifier") or {}
        user = ident.get("user") or b.get("user")
        if ident and ident.get("type") != "m.id.user":
            raise MatrixError(400, "M_UNKNOWN", "Unknown identifier type")
        if not isinstance(user, str):
            raise MatrixError(400, "M_MISSING_PARAM", "Missing user")
        hs = self.hs
        uid = user if user.startswith("@") else "@%s:%s" % (user, hs.server_name)
        with hs.cond:
            u = hs.users.get(uid)
            if not u or u["password"] != b.get("password"):
                raise forbidden("Invalid username or password")
            want = b.get("device_id")
            dev = want if isinstance(want, str) and want else \
                "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(10))
            devs = hs.devices.setdefault(uid, {})
            if dev not in devs:
                devs[dev] = {"display_name": b.get("initial_device_display_name"), "keys": None,
                             "otks": {}, "fallback": {}}
            tok = "syt_" + secrets.token_urlsafe(24)
            hs.tokens[tok] = (uid, dev)
            hs.logins.append((uid, dev, want))
        return {"user_id": uid, "access_token": tok, "device_id": dev, "home_server": hs.server_name}

    def h_post_logout(self, who, args, q, b, method, path):
        with self.hs.cond:
            for tok, w in list(self.hs.tokens.items()):
                if w == who:
                    del self.hs.tokens[tok]
        return {}

    def h_whoami(self, who, args, q, b, method, path):
        return {"user_id": who[0], "device_id": who[1], "is_guest": False}

    # ---------- sync (answers outside the handler table: long-poll and faults) ----------

    def h_get_sync(self, who, args, q, b, method, path):
        body = self.hs.sync(who[0], who[1], q)
        return 200, body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()

    # ---------- rooms ----------

    def room(self, room_id):
        r = self.hs.rooms.get(room_id)
        if not r:
            raise forbidden("Unknown room %s" % room_id)
        return r

    def must_be_joined(self, room, user):
        if room.membership(user) != "join":
            raise forbidden("User %s not in room %s" % (user, room.id))

    def h_create_room(self, who, args, q, b, method, path):
        hs = self.hs
        user = who[0]
        with hs.cond:
            rid = hs._id("!")
            alias = None
            if b.get("room_alias_name"):
                alias = "#%s:%s" % (b["room_alias_name"], hs.server_name)
                if alias in hs.aliases:
                    raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")
            room = Room(rid, b.get("room_version", "10"))
            hs.rooms[rid] = room
            preset = b.get("preset") or ("public_chat" if b.get("visibility") == "public" else "private_chat")
            hs._append(rid, {"type": "m.room.create", "state_key": "", "sender": user,
                             "content": {"creator": user, "room_version": room.version}}, who, None)
            hs._append(rid, hs._member_event(user, "join", user), who)
            pl = {"users": {user: 100}, "users_default": 0, "events_default": 0, "state_default": 50,
                  "ban": 50, "kick": 50, "redact": 50, "invite": 0, "events": {}}
            if preset == "trusted_private_chat":
                for inv in b.get("invite", []):
                    pl["users"][inv] = 100
            pl.update(b.get("power_level_content_override") or {})
            hs._append(rid, {"type": "m.room.power_levels", "state_key": "", "sender": user, "content": pl}, who)
            if alias:
                hs.aliases[alias] = rid
                hs._append(rid, {"type": "m.room.canonical_alias", "state_key": "", "sender": user,
                                 "content": {"alias": alias}}, who)
            rule = "public" if preset == "public_chat" else "invite"
            hs._append(rid, {"type": "m.room.join_rules", "state_key": "", "sender": user,
                             "content": {"join_rule": rule}}, who)
            hs._append(rid, {"type": "m.room.history_visibility", "state_key": "", "sender": user,
                             "content": {"history_visibility": "shared"}}, who)
            for st in b.get("initial_state", []):
                hs._append(rid, {"type": st["type"], "state_key": st.get("state_key", ""), "sender": user,
                                 "content": st.get("content", {})}, who)
            for key, typ in (("name", "m.room.name"), ("topic", "m.room.topic")):
                if b.get(key):
                    hs._append(rid, {"type": typ, "state_key": "", "sender": user,
                                     "content": {key: b[key]}}, who)
            for inv in b.get("invite", []):
                extra = {"is_direct": True} if b.get("is_direct") else None
                hs._append(rid, hs._member_event(inv, "invite", user, extra), who)
        return {"room_id": rid}

    def do_join(self, who, rid):
        hs = self.hs
        with hs.cond:
            room = self.room(rid)
            m = room.membership(who[0])
            rule = room.state.get(("m.room.join_rules", ""))
            public = rule and rule.ev["content"].get("join_rule") == "public"
            if m == "ban":
                raise forbidden("You are banned from this room")
            if m not in ("invite", "join") and not public:
                raise forbidden("You are not invited to this room.")
            if m != "join":
                hs._append(rid, hs._member_event(who[0], "join", who[0]), who)
        return {"room_id": rid}

    def h_join_alias(self, who, args, q, b, method, path):
        ref = args[0]
        if ref.startswith("#"):
            with self.hs.cond:
                rid = self.hs.aliases.get(ref)
            if not rid:
                raise not_found("Room alias %s not found" % ref)
            ref = rid
        return self.do_join(who, ref)

    def h_join_room(self, who, args, q, b, method, path):
        return self.do_join(who, args[0])

    def h_invite(self, who, args, q, b, method, path):
        hs = self.hs
        target = b.get("user_id")
        if not isinstance(target, str):
            raise MatrixError(400, "M_MISSING_PARAM", "Missing user_id")
        with hs.cond:
            room = self.room(args[0])
            self.must_be_joined(room, who[0])
            if room.membership(target) in ("join", "ban"):
                raise forbidden("%s is already in the room" % target)
            hs._append(room.id, hs._member_event(target, "invite", who[0]), who)
        return {}

    def h_leave(self, who, args, q, b, method, path):
        hs = self.hs
        with hs.cond:
            room = self.room(args[0])
            if room.membership(who[0]) not in ("join", "invite"):
                raise forbidden("User %s not in room %s" % (who[0], room.id))
            hs._append(room.id, hs._member_event(who[0], "leave", who[0]), who)
        return {}

    def h_joined_members(self, who, args, q, b, method, path):
        with self.hs.cond:
            room = self.room(args[0])
            self.must_be_joined(room, who[0])
            joined = {}
            for u in room.members("join"):
                c = room.state[("m.room.member", u)].ev["content"]
                joined[u] = {"display_name": c.get("displayname"), "avatar_url": c.get("avatar_url")}
        return {"joined": joined}

    def h_get_state(self, who, args, q, b, method, path):
        with self.hs.cond:
            room = self.room(args[0])
            self.must_be_joined(room, who[0])
            return 200, json.dumps([self.hs._render(e, *who) for e in room.state.values()]).encode()

    def h_messages(self, who, args, q, b, method, path):
        """dir is required (v1.3+); from/to take prev_batch, next_batch or end tokens; filter is a
        RoomEventFilter (types only).  As Synapse does: end comes with every page that read events, even
        when visibility filtering (hidden) left none of them in the chunk, and is left out only when
        there was nothing more to read; limit is capped by the server (messages_cap)."""
        hs = self.hs
        with hs.cond:
            room = self.room(args[0])
            self.must_be_joined(room, who[0])
            d = q.get("dir")
            if d not in ("b", "f"):
                raise MatrixError(400, "M_INVALID_PARAM", "dir must be b or f")

            def pos_of(tok, default):
                if not tok:
                    return default
                m = re.fullmatch(r"p(\d+)|s(\d+)_\d+_\d+", tok)
                if not m:
                    raise MatrixError(400, "M_INVALID_PARAM", "Invalid token %r" % tok)
                return int(m.group(1) or m.group(2))
            frm = q.get("from", "")
            pos = pos_of(frm, hs.pos if d == "b" else 0)
            to = q.get("to")
            limit = max(1, min(int(q.get("limit", "10")), hs.messages_cap or 1000))
            filt = json.loads(q["filter"]) if q.get("filter") else None
            if d == "b":
                lo = pos_of(to, 0) if to else 0
                window = [e for e in room.events if lo < e.pos <= pos and type_matches(filt, e.ev["type"])]
                page = window[-limit:][::-1]
                end = "p%d" % (page[-1].pos - 1) if page else None
            else:
                hi = pos_of(to, hs.pos) if to else hs.pos
                window = [e for e in room.events if pos < e.pos <= hi and type_matches(filt, e.ev["type"])]
                page = window[:limit]
                end = "p%d" % page[-1].pos if page else None
            chunk = [hs._render(e, *who) for e in page if e.ev["event_id"] not in hs.hidden]
            for ev in chunk:
                ev["room_id"] = room.id
            resp = {"chunk": chunk, "start": frm or "p%d" % pos}
            if end:
                resp["end"] = end
            return resp

    def idempotent(self, who, method, path, make):
        """The same txnId from the same device gets the same answer and no second event."""
        hs = self.hs
        key = (who[0], who[1], method, path)
        with hs.cond:
            if key in hs.txns:
                return hs.txns[key]
            resp = make()
            hs.txns[key] = resp
            return resp

    def h_send(self, who, args, q, b, method, path):
        rid, etype, txn = args
        hs = self.hs
        if len(json.dumps(b)) > MAX_EVENT_BYTES:
            raise MatrixError(413, "M_TOO_LARGE", "event too large")

        def make():
            room = self.room(rid)
            self.must_be_joined(room, who[0])
            e = hs._append(rid, {"type": etype, "sender": who[0], "content": b}, who, txn)
            return {"event_id": e.ev["event_id"]}
        return self.idempotent(who, method, path, make)

    def h_put_state(self, who, args, q, b, method, path):
        hs = self.hs
        rid, etype = args[0], args[1]
        key = args[2] if len(args) > 2 else ""
        with hs.cond:
            room = self.room(rid)
            self.must_be_joined(room, who[0])
            e = hs._append(rid, {"type": etype, "state_key": key, "sender": who[0], "content": b}, who)
        return {"event_id": e.ev["event_id"]}

    def h_redact(self, who, args, q, b, method, path):
        rid, target, txn = args
        hs = self.hs

        def make():
            room = self.room(rid)
            self.must_be_joined(room, who[0])
            t = hs.event_index.get(target)
            if not t or t.room_id != rid:
                raise not_found("Event not found")
            e = hs._append(rid, {"type": "m.room.redaction", "sender": who[0], "redacts": target,
                                 "content": dict(b, redacts=target)}, who, txn)
            t.ev["content"] = {}
            t.redacted_because = e.ev
            return {"event_id": e.ev["event_id"]}
        return self.idempotent(who, method, path, make)

    def h_put_typing(self, who, args, q, b, method, path):
        rid, user = args
        if user != who[0]:
            raise forbidden("Cannot set another user's typing state")
        if not isinstance(b.get("typing"), bool):
            raise bad_json("typing must be a boolean")
        with self.hs.cond:
            self.must_be_joined(self.room(rid), user)
            self.hs.typing.append((rid, user, b["typing"]))
            self.hs.cond.notify_all()
        return {}

    def h_post_receipt(self, who, args, q, b, method, path):
        rid, rtype, eid = args
        if rtype not in ("m.read", "m.read.private", "m.fully_read"):
            raise MatrixError(400, "M_INVALID_PARAM", "Unknown receipt type")
        with self.hs.cond:
            self.must_be_joined(self.room(rid), who[0])
            if eid not in self.hs.event_index:
                raise not_found("Event not found")
            self.hs.receipts.append((rid, who[0], eid))
            self.hs.cond.notify_all()
        return {}

    def h_read_markers(self, who, args, q, b, method, path):
        return {}

    # ---------- profile and filters ----------

    def h_get_profile(self, who, args, q, b, method, path):
        with self.hs.cond:
            u = self.hs.users.get(args[0])
            if not u:
                raise not_found("Profile not found")
            return {"displayname": u["displayname"], "avatar_url": None}

    def h_get_displayname(self, who, args, q, b, method, path):
        with self.hs.cond:
            u = self.hs.users.get(args[0])
            if not u or u["displayname"] is None:
                raise not_found("Profile not found")
            return {"displayname": u["displayname"]}

    def h_put_displayname(self, who, args, q, b, method, path):
        if args[0] != who[0]:
            raise forbidden("Cannot set another user's display name")
        with self.hs.cond:
            self.hs.users[who[0]]["displayname"] = b.get("displayname")
        return {}

    def h_post_filter(self, who, args, q, b, method, path):
        if args[0] != who[0]:
            raise forbidden("Cannot create filters for other users")
        with self.hs.cond:
            fid = str(len(self.hs.filters) + 1)
            self.hs.filters[(who[0], fid)] = b
        return {"filter_id": fid}

    def h_get_filter(self, who, args, q, b, method, path):
        with self.hs.cond:
            f = self.hs.filters.get((who[0], args[1]))
        if f is None:
            raise not_found("No such filter")
        return f

    # ---------- end-to-end encryption endpoints ----------

    def h_send_to_device(self, who, args, q, b, method, path):
        etype = args[0]
        hs = self.hs
        msgs = b.get("messages")
        if not isinstance(msgs, dict):
            raise bad_json("messages must be an object")

        def make():
            for user, per in msgs.items():
                for dev, content in per.items():
                    targets = list(hs.devices.get(user, {})) if dev == "*" else [dev]
                    for d in targets:
                        hs._queue_to_device(who[0], who[1], user, d, etype, content)
            hs.cond.notify_all()
            return {}
        return self.idempotent(who, method, path, make)

    def h_keys_upload(self, who, args, q, b, method, path):
        hs = self.hs
        user, dev = who
        with hs.cond:
            d = hs.devices[user].setdefault(dev, {"display_name": None, "keys": None, "otks": {}, "fallback": {}})
            fbs = b.get("fallback_keys") or b.get("org.matrix.msc2732.fallback_keys") or {}
            log = {"user": user, "device": dev, "device_keys": b.get("device_keys") is not None,
                   "otks": sorted(b.get("one_time_keys") or {}), "fallback": sorted(fbs), "status": 200}
            hs.key_uploads.append(log)
            try:
                return self._keys_upload(hs, b, user, dev, d, fbs)
            except MatrixError as e:
                log["status"] = e.status
                raise

    def _keys_upload(self, hs, b, user, dev, d, fbs):
        """keys/upload with the lock held."""
        dk = b.get("device_keys")
        if dk is not None:
            if dk.get("user_id") != user or dk.get("device_id") != dev:
                raise bad_json("device_keys user_id/device_id do not match the access token")
            if d["keys"] != dk:
                d["keys"] = copy.deepcopy(dk)
                hs._device_changed(user)
        otks = b.get("one_time_keys") or {}
        for kid, key in otks.items():   # all refused when one is: nothing half-stored
            old = d["otks"].get(kid) or d.get("claimed", {}).get(kid)
            if old is not None and old != key:
                raise MatrixError(400, "M_UNKNOWN", "One time key %s already exists. Old key: %s;"
                                  " new key: %s" % (kid, json.dumps(old), json.dumps(key)))
        for kid, key in otks.items():
            if kid not in d["otks"] and kid not in d.get("claimed", {}):
                d["otks"][kid] = copy.deepcopy(key)
        for kid, key in fbs.items():
            alg = kid.split(":", 1)[0]
            d["fallback"][alg] = {"id": kid, "key": copy.deepcopy(key), "used": False}
        counts = {}
        for kid in d["otks"]:
            alg = kid.split(":", 1)[0]
            counts[alg] = counts.get(alg, 0) + 1
        counts.setdefault("signed_curve25519", 0)
        return {"one_time_key_counts": counts}

    def h_keys_query(self, who, args, q, b, method, path):
        hs = self.hs
        out = {"device_keys": {}, "failures": {}, "master_keys": {}, "self_signing_keys": {},
               "user_signing_keys": {}}
        with hs.cond:
            for user, wanted in (b.get("device_keys") or {}).items():
                devs = hs.devices.get(user)
                if devs is None:
                    out["device_keys"][user] = {}
                    continue
                per = {}
                for dev, d in devs.items():
                    if d["keys"] is None or (wanted and dev not in wanted):
                        continue
                    k = copy.deepcopy(d["keys"])
                    k.setdefault("unsigned", {})["device_display_name"] = d["display_name"]
                    per[dev] = k
                out["device_keys"][user] = per
                xs = hs.xsign.get(user, {})
                for kind in ("master", "self_signing"):
                    if kind in xs:
                        out[kind + "_keys"][user] = copy.deepcopy(xs[kind])
                if user == who[0] and "user_signing" in xs:
                    out["user_signing_keys"][user] = copy.deepcopy(xs["user_signing"])
        return out

    def h_keys_claim(self, who, args, q, b, method, path):
        hs = self.hs
        out = {"one_time_keys": {}, "failures": {}}
        with hs.cond:
            for user, per in (b.get("one_time_keys") or {}).items():
                for dev, alg in per.items():
                    d = hs.devices.get(user, {}).get(dev)
                    if not d:
                        continue
                    kid = next((k for k in d["otks"] if k.split(":", 1)[0] == alg), None)
                    if kid:
                        key = d["otks"].pop(kid)
                        d.setdefault("claimed", {})[kid] = key
                    elif alg in d["fallback"]:
                        fb = d["fallback"][alg]
                        fb["used"] = True
                        kid, key = fb["id"], fb["key"]
                    else:
                        continue
                    out["one_time_keys"].setdefault(user, {}).setdefault(dev, {})[kid] = copy.deepcopy(key)
        return out

    def h_device_signing_upload(self, who, args, q, b, method, path):
        hs = self.hs
        user = who[0]
        with hs.cond:
            has = bool(hs.xsign.get(user))
            if has or hs.require_uia_for_xsign:
                a = b.get("auth") or {}
                ok = a.get("type") == "m.login.password" and a.get("session") in hs.uia_sessions and \
                    a.get("password") == hs.users[user]["password"]
                if not ok:
                    session = secrets.token_urlsafe(12)
                    hs.uia_sessions.add(session)
                    return 401, {"flows": [{"stages": ["m.login.password"]}], "params": {}, "session": session}
            xs = hs.xsign.setdefault(user, {})
            for kind in ("master", "self_signing", "user_signing"):
                k = b.get(kind + "_key")
                if k is not None:
                    if k.get("user_id") != user:
                        raise bad_json("%s_key user_id does not match" % kind)
                    xs[kind] = copy.deepcopy(k)
            hs._device_changed(user)
        return {}

    def h_signatures_upload(self, who, args, q, b, method, path):
        hs = self.hs
        failures = {}
        with hs.cond:
            for user, per in b.items():
                for key_id, obj in per.items():
                    target = None
                    d = hs.devices.get(user, {}).get(key_id)
                    if d and d["keys"]:
                        target = d["keys"]
                    for xs in hs.xsign.get(user, {}).values():
                        if any(k.split(":", 1)[1] == key_id for k in xs.get("keys", {})):
                            target = xs
                    if target is None:
                        failures.setdefault(user, {})[key_id] = {"errcode": "M_NOT_FOUND", "error": "Unknown key"}
                        continue
                    for signer, sigs in (obj.get("signatures") or {}).items():
                        target.setdefault("signatures", {}).setdefault(signer, {}).update(sigs)
                hs._device_changed(user)
        return {"failures": failures}


def main():
    port = 0
    if len(sys.argv) > 2 and sys.argv[1] == "--port":
        port = int(sys.argv[2])
    hs = Homeserver()
    hs.start(port)
    print("port %d" % hs.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hs.stop()


if __name__ == "__main__":
    main()
