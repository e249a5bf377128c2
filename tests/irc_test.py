#!/usr/bin/python3
"""irc_test.py: the IRC transport against real servers.  InspIRCd linked to
Atheme (SASL accounts) and ngircd run as the test's own children on free
loopback ports; two kneebots (the release build and the ASan build) connect
to them with configs written here, and small clients of the test's own play
the humans.  Prints "ok - ..." / "not ok - ..." lines."""
import os
import re
import shutil
import signal
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ircd  # noqa: E402

failures = 0
# KNEEBOT_TEST_KEEP=1 keeps the temp dir (logs) and logs at debug
KEEP = os.environ.get("KNEEBOT_TEST_KEEP") == "1"
LOG_LEVEL = "debug" if KEEP else "info"


def check(cond, what, detail=""):
    global failures
    print("%s - %s" % ("ok" if cond else "not ok", what))
    if not cond:
        failures += 1
        if detail:
            for line in str(detail).splitlines()[:20]:
                print("#   " + line)
    sys.stdout.flush()
    return cond


def parallel(*fns):
    """Runs the callables at once (each IRC registration waits for a server tick)."""
    out, errs = [None] * len(fns), []

    def run(i, f):
        try:
            out[i] = f()
        except Exception as e:  # noqa: BLE001
            errs.append(e)
    ts = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(fns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        raise errs[0]
    return out


def from_bot(bot, target=None):
    """Replies from a bot (NOTICE or PRIVMSG), optionally to one target."""
    def pred(m):
        return (m.nick.lower().startswith(bot.lower()) and m.command in ("NOTICE", "PRIVMSG")
                and (target is None or m.params[0].lower() == target.lower()))
    return pred


def ask(client, target, text, bot, reply_target=None, quiet=0.6, first_timeout=8):
    client.send("PRIVMSG %s :%s" % (target, text))
    return client.collect(from_bot(bot, reply_target or target), first_timeout, quiet)


def texts(msgs):
    return [m.text() for m in msgs]


def names_of(client, chan):
    client.send("NAMES %s" % chan)
    m = client.wait(lambda m: m.command == "353" and m.params[2].lower() == chan.lower(), 5)
    return [n.lstrip("@+~&%") for n in m.text().split()] if m else []


def wait_in_channel(client, chan, nick, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(n.lower() == nick.lower() for n in names_of(client, chan)):
            return True
        time.sleep(0.3)
    return False


def wait_out_of_channel(client, chan, nick, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(n.lower() == nick.lower() for n in names_of(client, chan)):
            return True
        time.sleep(0.3)
    return False


def silent_then(client, target, text, bot, control, quiet=0.6):
    """Sends text that must be ignored, then a control command that must be
    answered; returns the first reply, which is the control's when text was
    ignored (replies leave in order)."""
    client.send("PRIVMSG %s :%s" % (target, text))
    got = ask(client, target, control, bot, quiet=quiet)
    return got


def connect_retry(port, nick, tries=10):
    for i in range(tries):
        try:
            return ircd.Client(port, nick)
        except RuntimeError:
            if i == tries - 1:
                raise
            time.sleep(0.3)


def test_kb(h):
    """A copy of responses/ with two hostile entries: a bare CR followed by an
    IRC command, and a line far longer than an IRC line, with multi-byte
    UTF-8 in it."""
    kb = h.path("responses")
    shutil.copytree(os.path.join(ircd.ROOT, "responses"), kb)
    with open(kb + "/topics.ini", "rb") as f:
        t = f.read()
    inject = "line = Rest first.\rPRIVMSG #club :INJECTED\rQUIT :INJECTED\r and then ice.\n"
    long_words = " ".join("stride%d—café" % i for i in range(180))   # the KB takes lines up to 4 KiB
    t = t.replace(b"[topic rice]\n", ("[topic rice]\n" + inject).encode())
    t = t.replace(b"[topic shoes]\n", ("[topic shoes]\nline = Long: %s.\n" % long_words).encode())
    with open(kb + "/topics.ini", "wb") as f:
        f.write(t)
    return kb, long_words


def write(h, name, text, mode=0o600):
    p = h.path(name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)
    return p


def main():
    # a CI timeout's SIGTERM still runs the clean-up below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    h = ircd.Harness()
    try:
        run(h)
    except Exception:  # noqa: BLE001
        check(False, "the IRC test ran to the end", traceback.format_exc())
    finally:
        h.close(keep=KEEP)
    return 1 if failures else 0


def run(h):
    t0 = time.monotonic()
    h.make_certs()
    h.start_inspircd()
    h.start_ngircd()
    P = h.ports
    kb, long_words = test_kb(h)
    write(h, "botpw", "botpw1\n")
    write(h, "badpw", "wrong-password\n")

    # accounts: the bot's, the admin's; the bot's certificate for SASL EXTERNAL
    (botacct, ok1), (alice, ok2), taken = parallel(
        lambda: h.register_account("kneebot", "botpw1"),
        lambda: h.register_account("alice", "alicepw"),
        lambda: ircd.Client(P["plain"], "taken"))
    check(ok1 and ok2, "Atheme accounts registered through NickServ on InspIRCd")
    botacct.send("PRIVMSG NickServ :CERT ADD %s" % h.client_fp)
    botacct.wait(lambda m: m.nick == "NickServ" and h.client_fp in m.text().lower(), 5)
    botacct.close()
    taken.join("#collide")

    common = """[bot]
responses_dir = {kb}
state_dir = {dir}
log_level = {log_level}
cooldown_s = 0
room_max_per_min = 0
ignore = mask:ignored!*@*
"""
    fast = "tls = no\nhost = 127.0.0.1\nport = {plain}\nflood_burst = 30\nflood_interval_ms = 50\n"
    conf_a = (common + """nick = kneebot

[irc.main]
""" + fast + """channels = #club, #knees, #keyed sekrit
sasl_mechanism = PLAIN
sasl_username = kneebot
sasl_password_file = botpw
admins = account:alice
join_on_invite = yes
kick_rejoin_s = 1

[irc.flood]
host = 127.0.0.1
port = {plain}
tls = no
nick = kneeflood
channels = #flood

[irc.caps]
""" + fast + """nick = kneecap
channels = #capped
room_max_per_min = 2
cooldown_s = 60

[irc.collide]
""" + fast + """nick = taken
alt_nicks = taken2
channels = #collide

[irc.pd]
""" + fast + """nick = kneepd
channels = #pd
private_details = yes
""").format(kb=kb, dir=h.dir, log_level=LOG_LEVEL, **P)
    conf_b_tmpl = common + """nick = kneeb

[irc.tls]
host = 127.0.0.1
port = {tls}
tls = yes
tls_ca_file = ca.pem
tls_cert_file = client.pem
tls_key_file = client.key
sasl_mechanism = EXTERNAL
nick = kneetls
channels = #tls

[irc.badpw]
""" + fast + """nick = kneebad
sasl_mechanism = PLAIN
sasl_username = kneebot
sasl_password_file = badpw

[irc.noca]
host = 127.0.0.1
port = {tls}
nick = kneenoca

[irc.ng]
host = 127.0.0.1
port = {ngircd}
tls = no
nick = kneebot
channels = #club
flood_burst = 30
flood_interval_ms = 50

[irc.adm]
""" + fast + """nick = kneeadm
channels = {adm_channels}
sasl_mechanism = PLAIN
sasl_username = kneebot
sasl_password_file = botpw
admins = account:alice
"""

    def conf_b(adm_channels="#adm", extra=""):
        return conf_b_tmpl.format(kb=kb, dir=h.dir, adm_channels=adm_channels, log_level=LOG_LEVEL, **P) + extra

    h.start_bot("bot", "build/kneebot", conf_a)
    conf_b_path = h.start_bot("asanbot", "build/asan/kneebot", conf_b())
    time.sleep(0.3)
    for name in ("bot", "asanbot"):
        if h.procs[name].poll() is not None:
            raise RuntimeError("%s exited at start:\n%s" % (name, h.bot_log(name)[-2000:]))

    # the humans
    runner, ngrunner, tlsrunner, other = parallel(
        lambda: ircd.Client(P["plain"], "runner"),
        lambda: ircd.Client(P["ngircd"], "runner"),
        lambda: ircd.Client(P["tls"], "tlsrunner", tls_ca=h.path("ca.pem")),
        lambda: ircd.Client(P["plain"], "otherbot", bot=True))
    check(True, "test servers and humans up in %.1f s" % (time.monotonic() - t0))

    # --- connection and registration
    check(h.wait_log("bot", "main: connected to 127.0.0.1:%d as kneebot" % P["plain"]),
          "plain TCP connection registers as kneebot")
    check(h.wait_log("bot", "main: SASL PLAIN login as kneebot succeeded"), "SASL PLAIN with an Atheme account")
    runner.join("#club", "#knees", "#keyed sekrit")
    for chan in ("#club", "#knees", "#keyed"):
        check(wait_in_channel(runner, chan, "kneebot"), "joined %s (several channels, one keyed)" % chan)
    check(h.wait_log("asanbot", "tls: connected to 127.0.0.1:%d as kneetls" % P["tls"]), "TLS connection verified against the test CA")
    check(h.wait_log("asanbot", "tls: SASL EXTERNAL login as"), "SASL EXTERNAL with the client certificate over TLS")
    tlsrunner.join("#tls")
    check(wait_in_channel(tlsrunner, "#tls", "kneetls"), "joined a channel over TLS")
    got = ask(tlsrunner, "#tls", "kneetls: my knee hurts on the outside after long runs", "kneetls")
    check(got and "IT band" in " ".join(texts(got)), "answers over TLS", got)
    check(h.wait_log("asanbot", "badpw: SASL PLAIN login as kneebot failed (904"),
          "a wrong SASL password gives a clear log line", h.bot_log("asanbot")[-2000:])
    check(h.wait_log("asanbot", "badpw: connected to 127.0.0.1:%d as kneebad" % P["plain"]),
          "and the bot carries on without an account")
    noca = h.wait_log("asanbot", "noca: cannot connect to 127.0.0.1:%d" % P["tls"])
    check(noca and re.search(r"noca: cannot connect.*(certificate|SSL)", h.bot_log("asanbot")),
          "TLS without the test CA is refused (verification on by default)")

    # --- messages
    got = ask(runner, "#club", "my knee hurts on the outside after long runs, any idea?", "kneebot")
    check(got and all(m.command == "NOTICE" for m in got) and got[0].text().startswith("runner: ")
          and "IT band" in " ".join(texts(got)), "ambient knee question answered by NOTICE to the asker", got)
    check(got and got[0].tags.get("account") == "kneebot", "replies carry the bot's services account", got[:1])
    got = silent_then(runner, "#club", "nice weather today, going for a run later", "kneebot", "!about")
    check(got and "kneebot" in got[0].text() and "not a diagnosis" in " ".join(texts(got)), "chatter ignored", got)
    got = ask(runner, "#club", "kneebot: pain under my kneecap when going downstairs, what should I do?", "kneebot")
    check(got and "runner's knee" in " ".join(texts(got)), "addressed question answered", got)
    got = ask(runner, "#club", "@kneebot what is the exercise for that?", "kneebot")
    check(bool(got), "@nick addressing answered", got)
    got = ask(runner, "#club", "!exercise clams", "kneebot")
    check(got and "side-lying leg raise" in got[0].text(), "a command answered (an alias resolved)", got)
    got = ask(runner, "kneebot", "my knee is swollen after a fall and I can't put weight on it", "kneebot", reply_target="runner")
    check(got and "weight" in " ".join(texts(got)) and not got[0].text().startswith("runner:"),
          "a private message answered in private", got)
    commands = ["help", "help exercise", "exercise band walk", "exercises hips", "redflags", "rice", "return",
                "shoes", "crosstrain", "condition runner's knee", "sources", "about", "nosuchcommand"]
    all_lines = []
    for cmd in commands:
        got = ask(runner, "#knees", "!" + cmd, "kneebot")
        all_lines += got
        check(got and all(m.text().startswith("runner: ") for m in got), "!%s answered on IRC" % cmd, got)
    longest = max(m.msg_len for m in all_lines) if all_lines else 0
    check(all_lines and longest <= 512, "every command reply line relayed within 512 bytes (longest %d)" % longest)

    # long answer: the test KB's long shoes line must be cut at words, within 512 bytes
    got = ask(runner, "#club", "!shoes", "kneebot")
    words = " ".join(t[len("runner: "):] for t in texts(got)).split()
    check(len(got) > 3, "a long answer is split over several lines (%d)" % len(got))
    check(all(m.msg_len <= 512 for m in got), "every relayed line of it at most 512 bytes, prefix and CR LF included",
          [m.msg_len for m in got])
    check(max(m.msg_len for m in got) > 480, "and the lines are filled, not cut short (longest %d)" % max(m.msg_len for m in got))
    check(all(m.raw.decode("utf-8", "strict") is not None for m in got), "split at UTF-8 boundaries")
    check(" ".join(long_words.split()) in " ".join(words), "split at word boundaries, nothing lost")

    # CR in reply text (from the test KB) cannot end the line early: ngircd takes a bare CR as a line end
    ngrunner.join("#club")
    check(wait_in_channel(ngrunner, "#club", "kneebot"), "ngircd: joined #club")
    for name, cl in (("ngircd", ngrunner), ("InspIRCd", runner)):
        got = ask(cl, "#club", "!rice", "kneebot")
        cl.send("PRIVMSG #club :!about")
        cl.wait(lambda m: m.nick == "kneebot" and "kneebot" in m.text(), 8)
        injected = [m for m in cl.log if m.nick == "kneebot" and (m.command in ("PRIVMSG", "QUIT", "PART")
                                                                    or m.text() == "INJECTED")]
        check(got and "PRIVMSG #club :INJECTED" in " ".join(texts(got)) and not injected,
              "%s: a reply carrying CR cannot inject a command" % name, injected or got)
    got = ask(ngrunner, "#club", "my knee hurts on the outside after long runs, any idea?", "kneebot")
    check(got and "IT band" in " ".join(texts(got)), "ngircd: ambient question answered", got)

    # another bot (IRCv3 bot mode, tagged messages) is ignored
    other.join("#club")
    other.send("PRIVMSG #club :my knee hurts on the outside after long runs, any idea?")
    time.sleep(0.2)
    got = ask(runner, "#club", "!about", "kneebot")
    check(got and "otherbot" not in got[0].text() and got[0].text().startswith("runner: "),
          "another bot's tagged message is ignored", got)
    other.send("PRIVMSG kneebot :\x01VERSION\x01")
    ignored = ircd.Client(P["plain"], "ignored")
    ignored.join("#club")
    ignored.send("PRIVMSG #club :kneebot: my knee hurts on the outside")
    ignored.send("PRIVMSG kneebot :\x01VERSION\x01")
    time.sleep(0.2)
    got = ask(runner, "#club", "!about", "kneebot")
    check(got and got[0].text().startswith("runner: ")
          and not [m for m in ignored.log if m.nick == "kneebot" and m.command == "NOTICE"],
          "an ignored mask gets nothing, CTCP included", got)
    ignored.close()

    # CTCP
    runner.send("PRIVMSG kneebot :\x01VERSION\x01")
    m = runner.wait(lambda m: m.nick == "kneebot" and m.text().startswith("\x01VERSION"), 5)
    check(m and "kneebot" in m.text() and m.command == "NOTICE", "CTCP VERSION answered", m)
    runner.send("PRIVMSG kneebot :\x01PING 12345\x01")
    m = runner.wait(lambda m: m.nick == "kneebot" and m.text().startswith("\x01PING"), 5)
    check(m and m.text() == "\x01PING 12345\x01", "CTCP PING echoed", m)
    runner.send("PRIVMSG kneebot :\x01CLIENTINFO\x01")
    m = runner.wait(lambda m: m.nick == "kneebot" and m.text().startswith("\x01CLIENTINFO"), 5)
    check(m and "SOURCE" in m.text(), "CTCP CLIENTINFO answered", m)
    runner.send("PRIVMSG kneebot :\x01FINGER\x01")
    got = ask(runner, "#club", "!about", "kneebot")
    check(got and got[0].params[0] == "#club", "other CTCP ignored", got)

    # private details: the channel gets a pointer, the asker the advice
    runner.join("#pd")
    wait_in_channel(runner, "#pd", "kneepd")
    runner.send("PRIVMSG #pd :my knee is swollen after a fall and I can't put weight on it")
    got = runner.collect(from_bot("kneepd"), 8, 0.6)
    chan = [m for m in got if m.params[0] == "#pd"]
    priv = [m for m in got if m.params[0] == "runner"]
    check(chan and "privately" in chan[0].text() and "professional" in chan[0].text() and len(chan) == 1
          and priv and "weight" in " ".join(texts(priv)), "private_details: advice in private, a red-flag pointer in channel", got)

    # flood control with the defaults: a burst of six commands, replies spaced after the first four lines
    runner.join("#flood")
    wait_in_channel(runner, "#flood", "kneeflood")
    for cmd in ("!about", "!return", "!crosstrain", "!sources", "!rice", "!help"):
        runner.send("PRIVMSG #flood :%s" % cmd)
    got = runner.collect(from_bot("kneeflood", "#flood"), 8, 3.0, limit=6)
    times = [m.when for m in got]
    gaps = [b - a for a, b in zip(times[3:], times[4:])]
    check(len(got) >= 6 and times[4] - times[0] >= 1.5 and all(g >= 1.5 for g in gaps),
          "flood control: the first 4 lines at once, then one every 2 s (%d lines)" % len(got),
          ["%.2f" % (t - times[0]) for t in times])
    order = [t.split(":", 1)[1].strip()[:12] for t in texts(got)]
    check(len(got) >= 4 and "kneebot" in order[0], "replies to one message stay together and in order", order)

    # nick collision: "taken" was held by a human, so the bot took its alternate; it regains the nick
    check(wait_in_channel(taken, "#collide", "taken2"), "nick in use: the alternate nick is used")
    taken.close()
    m = runner.wait(lambda m: False, 0.1)
    regained = False
    end = time.monotonic() + 10
    watcher = ircd.Client(P["plain"], "watcher")
    watcher.join("#collide")
    while time.monotonic() < end and not regained:
        regained = "taken" in [n.lower() for n in names_of(watcher, "#collide")]
        time.sleep(0.3)
    check(regained, "the configured nick is regained once it is free")
    watcher.close()

    # kick and rejoin: the bot joins on invite, is kicked, and comes back
    runner.join("#kick")
    runner.send("INVITE kneebot #kick")
    check(wait_in_channel(runner, "#kick", "kneebot"), "joins on INVITE (join_on_invite)")
    runner.send("KICK #kick kneebot :out")
    kicked = time.monotonic()
    m = runner.wait(lambda m: m.command == "JOIN" and m.nick == "kneebot" and m.params[0] == "#kick", 10)
    check(m and m.when - kicked >= 0.8, "kicked: rejoins after the configured delay",
          m and "%.2f s" % (m.when - kicked))

    # cooldown and room cap ([irc.caps]: room_max_per_min 2, cooldown 60 s)
    runner.join("#capped")
    wait_in_channel(runner, "#capped", "kneecap")
    got = ask(runner, "#capped", "my knee hurts on the outside after long runs, any idea?", "kneecap")
    check(bool(got), "cooldown: first ambient question answered", got)
    runner.send("PRIVMSG #capped :and it hurts more on downhill runs, my knee is sore on the outside")
    got = ask(runner, "kneecap", "!about", "kneecap", reply_target="runner")
    check(got and got[0].params[0] == "runner", "cooldown: the same person's ambient follow-up is merged, not answered", got)
    got = ask(runner, "#capped", "kneecap: pain under my kneecap when going downstairs", "kneecap")
    check(bool(got), "cooldown does not hold back an addressed question", got)
    runner.send("PRIVMSG #capped :!about")
    got = ask(runner, "kneecap", "!return", "kneecap", reply_target="runner")
    check(got and got[0].params[0] == "runner", "room cap: the third answer in a minute is held back", got)
    check(h.wait_log("bot", "caps: room cap of 2 answers a minute reached"), "room cap logged")

    # --- admin (account from account-tag), on the ASan bot
    alice.join("#adm")
    wait_in_channel(alice, "#adm", "kneeadm")
    got = ask(alice, "#adm", "!status", "kneeadm")
    check(got and "Up " in got[0].text() and "adm: connected to" in " ".join(texts(got)),
          "admin by services account: !status answered", got)
    got = ask(alice, "#adm", "!join #adm4", "kneeadm")
    check(got and wait_in_channel(alice, "#adm4", "kneeadm"), "admin !join", got)
    got = ask(alice, "#adm", "!part #adm4", "kneeadm")
    alice.join("#adm4")
    check(got and not wait_in_channel(alice, "#adm4", "kneeadm", 1), "admin !part", got)

    # reload by command with a good config: a new channel gets joined
    with open(conf_b_path, "w") as f:
        f.write(conf_b("#adm, #adm2"))
    got = ask(alice, "#adm", "!reload", "kneeadm")
    check(got and "Reloaded" in got[0].text(), "!reload with a good config answered", got)
    alice.join("#adm2")
    check(wait_in_channel(alice, "#adm2", "kneeadm"), "!reload: the new channel is joined")
    check(h.bot_log("asanbot").count("tls: connecting") == 1, "!reload leaves unchanged networks connected")
    check(h.bot_log("asanbot").count("adm: connecting") == 1 and "adm: configuration reloaded, connection kept" in h.bot_log("asanbot"),
          "!reload that only adds a channel joins it without reconnecting")
    # SIGHUP with a good config
    with open(conf_b_path, "w") as f:
        f.write(conf_b("#adm, #adm2, #adm3"))
    h.procs["asanbot"].send_signal(signal.SIGHUP)
    alice.join("#adm3")
    check(wait_in_channel(alice, "#adm3", "kneeadm"), "SIGHUP: the new channel is joined")
    wait_in_channel(alice, "#adm", "kneeadm")
    # a channel dropped from the config is parted, the others stay, still one connection
    with open(conf_b_path, "w") as f:
        f.write(conf_b("#adm, #adm3"))
    h.procs["asanbot"].send_signal(signal.SIGHUP)
    check(wait_out_of_channel(alice, "#adm2", "kneeadm") and wait_in_channel(alice, "#adm3", "kneeadm")
          and h.bot_log("asanbot").count("adm: connecting") == 1, "reload that drops a channel parts it, connection kept")
    with open(conf_b_path, "w") as f:
        f.write(conf_b("#adm, #adm2, #adm3"))
    h.procs["asanbot"].send_signal(signal.SIGHUP)
    wait_in_channel(alice, "#adm2", "kneeadm")
    # broken config: the old one is kept, the admin is told where
    with open(conf_b_path, "w") as f:
        f.write(conf_b("#adm, #adm2, #adm3", "bogus_key = 1\n"))
    got = ask(alice, "#adm", "!reload", "kneeadm")
    joined = " ".join(texts(got))
    check(got and "Reload failed" in joined and re.search(r"asanbot\.conf:\d+: \[irc\.adm\] unknown key 'bogus_key'", joined),
          "!reload with a broken config: refused, with file and line", got)
    h.procs["asanbot"].send_signal(signal.SIGHUP)
    check(h.wait_log("asanbot", "SIGHUP reload failed"), "SIGHUP with a broken config: logged, old config kept")
    got = ask(alice, "#adm", "!about", "kneeadm")
    check(bool(got), "still answering on the old config", got)
    with open(conf_b_path, "w") as f:
        f.write(conf_b("#adm, #adm2, #adm3"))

    # a nick that matches the admin's, without the account, gets one line
    alice.close()
    spoof = connect_retry(P["plain"], "alice")   # the server may hold the nick a moment after QUIT
    spoof.join("#adm")
    got = ask(spoof, "#adm", "!status", "kneeadm")
    check(len(got) == 1 and "admins" in got[0].text(), "spoofed admin nick refused with one line", got)
    check(h.wait_log("asanbot", "refused admin command 'status' from alice (account none"), "refusal logged with the identity tried")
    spoof.close()

    # server killed and restarted: reconnect, rejoin, answer; the other networks carry on
    h.stop("ngircd", signal.SIGKILL)
    time.sleep(0.5)
    got = ask(runner, "#club", "!about", "kneebot")
    check(bool(got), "InspIRCd networks carry on while ngircd is down", got)
    h.start_ngircd()
    ng2 = ircd.Client(P["ngircd"], "runner")
    ng2.join("#club")
    check(wait_in_channel(ng2, "#club", "kneebot", 25), "after a server restart the bot reconnects and rejoins")
    got = ask(ng2, "#club", "kneebot: pain under my kneecap when going downstairs", "kneebot")
    check(got and "runner's knee" in " ".join(texts(got)), "and answers again", got)
    check("ng: lost the connection" in h.bot_log("asanbot"), "the lost connection is logged")

    # clean exit: QUIT with a reason, no ASan report
    rc_a = h.stop("bot", signal.SIGTERM, 10)
    m = runner.wait(lambda m: m.command == "QUIT" and m.nick == "kneebot", 5)
    check(rc_a == 0 and m is not None, "SIGTERM: QUIT sent and a clean exit", (rc_a, m))
    rc_b = h.stop("asanbot", signal.SIGTERM, 15)
    log_b = h.bot_log("asanbot")
    check(rc_b == 0 and "ERROR: AddressSanitizer" not in log_b and "runtime error" not in log_b
          and "LeakSanitizer" not in log_b, "ASan build: no sanitizer report, clean exit", log_b[-3000:])
    for c in (runner, ngrunner, tlsrunner, other, ng2):
        c.close()
    check(True, "IRC test took %.1f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    sys.exit(main())
