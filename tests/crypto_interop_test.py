"""crypto_interop_test.py: python-olm (Debian's python3-olm, as nio uses it)
against what bot/crypto.c produces, through tests/crypto/interop.c.

python-olm verifies the device-key, one-time-key, fallback-key and
cross-signing signatures our C code made, over matrix-nio's canonical JSON; decrypts Olm
and Megolm messages our C code encrypted; and our C code decrypts what
python-olm encrypted.  Canonical JSON is compared with the spec's Python
encoder.  Every C step runs in a new process from pickles, so each also
crosses a restart.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import olm
from nio.api import Api

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "build", "tests", "crypto", "interop")
USER, DEVICE = "@kneebot:example.org", "KNEEBOTDEV"
failures = 0


def check(ok, what):
    global failures
    print(("ok - " if ok else "not ok - ") + what, flush=True)
    if not ok:
        failures += 1
    return ok


def canonical(value):
    """matrix-nio's canonical JSON (the spec appendix's Python encoder), the bytes nio verifies."""
    return Api.to_canonical_json(value).encode("utf-8")


def verifies(obj, user, key_id, key):
    sig = obj.get("signatures", {}).get(user, {}).get("ed25519:" + key_id)
    if sig is None:
        return False
    body = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    try:
        olm.ed25519_verify(key, canonical(body), sig)
        return True
    except olm.OlmVerifyError:
        return False


class Tool:
    def __init__(self, state):
        self.state = state

    def __call__(self, *args, stdin=None):
        cmd = [TOOL, args[0]] + ([self.state] if args[0] != "canon" else []) + list(args[1:])
        r = subprocess.run(cmd, input=stdin, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("interop %s: %s" % (args[0], r.stderr.decode(errors="replace").strip()))
        return r.stdout if args[0] == "canon" else json.loads(r.stdout)


def keys_and_signatures(tool):
    acct = tool("account", USER, DEVICE, "5")
    dk = acct["device_keys"]
    ed = dk["keys"]["ed25519:" + DEVICE]
    check(dk["user_id"] == USER and dk["device_id"] == DEVICE
          and dk["algorithms"] == ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]
          and ed == acct["ed25519"] and dk["keys"]["curve25519:" + DEVICE] == acct["curve25519"],
          "device keys object has the spec's fields and our identity keys")
    check(verifies(dk, USER, DEVICE, ed), "python-olm verifies the device keys' self-signature")
    tampered = json.loads(json.dumps(dk))
    tampered["device_id"] = DEVICE + "X"
    check(not verifies(tampered, USER, DEVICE, ed), "python-olm refuses the device keys with a changed byte")

    otks = acct["one_time_keys"]
    check(len(otks) == 5 and all(k.startswith("signed_curve25519:") for k in otks),
          "5 signed_curve25519 one-time keys")
    check(all(set(v) == {"key", "signatures"} and verifies(v, USER, DEVICE, ed) for v in otks.values()),
          "python-olm verifies every one-time key signature")
    (fb_id, fb), = acct["fallback_keys"].items()
    check(fb_id.startswith("signed_curve25519:") and fb.get("fallback") is True and verifies(fb, USER, DEVICE, ed),
          "python-olm verifies the fallback key object {key, fallback: true, signatures}")
    fb_false = dict(fb, fallback=False)
    check(not verifies(fb_false, USER, DEVICE, ed), "the fallback flag is covered by the signature")

    xs = tool("xsign", USER, DEVICE)
    (mk_id, mk_pub), = xs["master_key"]["keys"].items()
    (sk_id, sk_pub), = xs["self_signing_key"]["keys"].items()
    check(mk_id == "ed25519:" + mk_pub and xs["master_key"]["usage"] == ["master"]
          and xs["self_signing_key"]["usage"] == ["self_signing"], "cross-signing key objects well formed")
    check(verifies(xs["self_signing_key"], USER, mk_pub, mk_pub),
          "python-olm verifies the master key's signature on the self-signing key")
    check(verifies(xs["device_keys"], USER, sk_pub, sk_pub) and verifies(xs["device_keys"], USER, DEVICE, ed),
          "python-olm verifies the self-signing signature and the device's own on the device keys")
    check(xs["self_signing_after_pickle"] == sk_pub, "the pickled self-signing key keeps its public key")
    return acct


def olm_c_to_python(tool, acct):
    peer = olm.Account()
    peer.generate_one_time_keys(1)
    otk = list(peer.one_time_keys["curve25519"].values())[0]
    peer_curve = peer.identity_keys["curve25519"]
    m = tool("olm-out", "alice", peer_curve, otk, "m.room_key from C")
    check(m["type"] == 0, "C's first Olm message is a pre-key message")
    msg = olm.OlmPreKeyMessage(m["body"])
    session = olm.InboundSession(peer, msg, acct["curve25519"])
    peer.remove_one_time_keys(session)
    check(session.decrypt(msg) == "m.room_key from C", "python-olm decrypts C's pre-key message")
    reply = session.encrypt("reply from python")
    check(reply.message_type == 1, "python replies with a normal message")
    got = tool("olm-dec", "alice", "1", reply.ciphertext)
    check(got["plaintext"] == "reply from python", "C decrypts python's reply (session unpickled)")
    m2 = tool("olm-enc", "alice", "second from C")
    check(m2["type"] == 1 and session.decrypt(olm.OlmMessage(m2["body"])) == "second from C",
          "C's next message is a normal one and python decrypts it")


def olm_python_to_c(tool, acct):
    peer = olm.Account()
    (otk_id, otk), = list(acct["one_time_keys"].items())[:1]
    session = olm.OutboundSession(peer, acct["curve25519"], otk["key"])
    pre = session.encrypt("hello kneebot \u00e9\U0001F3C3")
    check(pre.message_type == 0, "python's first message is a pre-key message")
    got = tool("olm-in", "bob", peer.identity_keys["curve25519"], pre.ciphertext)
    check(got["plaintext"] == "hello kneebot \u00e9\U0001F3C3", "C decrypts python's pre-key message on a published key")
    try:
        tool("olm-in", "bob2", peer.identity_keys["curve25519"], pre.ciphertext)
        check(False, "a second session on the same one-time key is refused")
    except RuntimeError as e:
        check("BAD_MESSAGE_KEY_ID" in str(e), "a second session on the same one-time key is refused (%s)" % e)
    r = tool("olm-enc", "bob", "answer from C")
    check(r["type"] == 1 and session.decrypt(olm.OlmMessage(r["body"])) == "answer from C",
          "python decrypts C's answer")
    again = session.encrypt("and again")
    check(again.message_type == 1 and tool("olm-dec", "bob", "1", again.ciphertext)["plaintext"] == "and again",
          "C decrypts python's normal message")

    # the fallback key works for python too, and stays for a second peer
    (fb_id, fb), = acct["fallback_keys"].items()
    for name in ("fb1", "fb2"):
        p = olm.Account()
        s = olm.OutboundSession(p, acct["curve25519"], fb["key"])
        pre = s.encrypt("via fallback " + name)
        got = tool("olm-in", name, p.identity_keys["curve25519"], pre.ciphertext)
        check(got["plaintext"] == "via fallback " + name, "C decrypts a pre-key message on its fallback key (%s)" % name)


def megolm(tool):
    out = tool("megolm-out")
    inbound = olm.InboundGroupSession(out["session_key"])
    check(inbound.id == out["session_id"] and inbound.first_known_index == 0,
          "python-olm imports C's m.room_key session key: same session id, index 0")
    for i, text in enumerate(["{\"type\":\"m.room.message\"}", "second"]):
        c = tool("megolm-enc", text)
        plain, index = inbound.decrypt(c["ciphertext"])
        check(c["index"] == i and plain == text and index == i, "python decrypts C's Megolm message %d" % i)

    group = olm.OutboundGroupSession()
    group.encrypt("before the key was shared")
    got = tool("megolm-in", group.session_key)
    check(got["session_id"] == group.id and got["first_index"] == 1,
          "C imports python's session key at index 1 with the same id")
    ct = group.encrypt("{\"body\":\"knee hurts \u2014 after 10k\"}")
    dec = tool("megolm-dec", ct)
    check(dec["plaintext"] == "{\"body\":\"knee hurts \u2014 after 10k\"}" and dec["index"] == 1,
          "C decrypts python's Megolm message with its index")


CANON_CASES = [
    {},
    {"one": 1, "two": "Two"},
    {"b": "2", "a": "1"},
    {"auth": {"success": True, "mxid": "@john.doe:example.com", "profile": {"display_name": "John Doe",
              "three_pids": [{"medium": "email", "address": "john.doe@example.org"},
                             {"medium": "msisdn", "address": "123456789"}]}}},
    {"a": "日本語"}, {"本": 2, "日": 1}, {"a": None},
    {"ctl": "".join(chr(c) for c in range(1, 32)), "del": "\x7f", "slash": "a/b", "q": "\"\\"},
    {"emoji": "\U0001F600\U0001F3C3\u200d\u2640\ufe0f", "\uff01": 1, "\U0001F600": 2, "z": 3, "\u00e9": 4},
    {"B": 1, "b": 2, "A": [3, {"y": False, "X": True}], "a": -9007199254740991, "c": 9007199254740991},
    [{"nested": {"deeper": {"deepest": [[], {}]}}}, "x", 0, -1],
]


def canonical_json(tool):
    for i, case in enumerate(CANON_CASES):
        text = json.dumps(case, indent=2, ensure_ascii=(i % 2 == 0))
        got = tool("canon", stdin=text.encode())
        check(got == canonical(case), "canonical JSON case %d equals the spec's Python encoder" % i)


def main():
    # built with the Makefile's own flags (pattern rule build/tests/%); a no-op when up to date
    r = subprocess.run(["make", "-s", "-C", ROOT, "build/tests/crypto/interop"], capture_output=True)
    if r.returncode != 0:
        check(False, "build tests/crypto/interop.c: " + r.stderr.decode(errors="replace")[-400:])
        return 1
    state = tempfile.mkdtemp(prefix="kneebot-interop-")
    try:
        with open(os.path.join(state, "key"), "wb") as f:
            f.write(os.urandom(32))
        tool = Tool(state)
        acct = keys_and_signatures(tool)
        olm_c_to_python(tool, acct)
        olm_python_to_c(tool, acct)
        megolm(tool)
        canonical_json(tool)
    except Exception as e:  # a crash of the tool or python-olm is a failure, not a hang
        check(False, "interop run: %s: %s" % (type(e).__name__, e))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
