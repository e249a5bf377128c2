"""ircd.py: real IRC servers for the IRC tests and the bench, started on free
loopback ports in a temp dir: InspIRCd linked to Atheme (SASL accounts) and
ngircd; plus the small IRC client that plays the human, and the bot process.
Everything started here is killed by Harness.close(), also on failure."""
import base64
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def daemon(name):
    """A daemon's path: /usr/sbin is not on a normal user's PATH on Debian."""
    for d in ("/usr/sbin", "/usr/bin", "/sbin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return shutil.which(name) or name


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Msg:
    """One parsed IRC line, with the raw bytes and when it arrived."""

    def __init__(self, raw, when):
        self.raw = raw
        self.when = when
        line = raw.decode("utf-8", "replace")
        self.tags = {}
        if line.startswith("@"):
            tags, line = line[1:].split(" ", 1)
            for t in tags.split(";"):
                k, _, v = t.partition("=")
                self.tags[k] = v
        self.source = ""
        if line.startswith(":"):
            self.source, line = line[1:].split(" ", 1)
        self.nick = self.source.split("!")[0]
        trailing = None
        if " :" in line:
            line, trailing = line.split(" :", 1)
        parts = line.split()
        self.command = parts[0].upper() if parts else ""
        self.params = parts[1:] + ([trailing] if trailing is not None else [])

    def text(self):
        return self.params[-1] if self.params else ""

    def __repr__(self):
        return repr(self.raw)


class Client:
    """The human: a small IRC client that logs everything it receives."""

    def __init__(self, port, nick, tls_ca=None, sasl=None, caps=("message-tags", "account-tag", "server-time"), bot=False):
        self.nick = nick
        self.log = []
        self.buf = b""
        self.pending = []
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls_ca:
            ctx = ssl.create_default_context(cafile=tls_ca)
            sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock = sock
        self.send("CAP LS 302")
        self.send("NICK %s" % nick)
        self.send("USER %s 0 * :test human" % nick.lower())
        ls = self.wait(lambda m: m.command == "CAP" and len(m.params) > 1 and m.params[1] == "LS", 10)
        offered = set(c.split("=")[0] for c in ls.text().split()) if ls else set()
        want = [c for c in caps if c in offered]
        if sasl and "sasl" in offered:
            want.append("sasl")
        if want:
            self.send("CAP REQ :%s" % " ".join(want))
            self.wait(lambda m: m.command == "CAP" and m.params[1] in ("ACK", "NAK"), 10)
        if sasl and "sasl" in offered:
            self.send("AUTHENTICATE PLAIN")
            self.wait(lambda m: m.command == "AUTHENTICATE", 10)
            cred = base64.b64encode(("\0%s\0%s" % sasl).encode()).decode()
            self.send("AUTHENTICATE %s" % cred)
            self.wait(lambda m: m.command in ("903", "904"), 10)
        self.send("CAP END")
        welcome = self.wait(lambda m: m.command in ("001", "433"), 15)
        if not welcome or welcome.command != "001":
            raise RuntimeError("%s could not register: %r" % (nick, welcome))
        self.wait(lambda m: m.command in ("376", "422"), 10)
        if bot:
            self.send("MODE %s +B" % nick)

    def send(self, line):
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data + b"\r\n")

    def _read(self, timeout):
        if self.pending:
            return self.pending.pop(0)
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLError, BlockingIOError):
                return None
            if not data:
                raise ConnectionError("%s: server closed the connection" % self.nick)
            self.buf += data
        raw, self.buf = self.buf.split(b"\n", 1)
        m = Msg(raw.rstrip(b"\r") if raw.endswith(b"\r") else raw, time.monotonic())
        m.wire_len = len(raw) + 1
        # what counts against 512: the message without its IRCv3 tags, CR LF included
        m.msg_len = m.wire_len - (raw.index(b" ") + 1 if raw.startswith(b"@") else 0)
        self.log.append(m)
        if m.command == "PING":
            self.send("PONG :%s" % m.text())
        return m

    def wait(self, pred, timeout=10):
        """The first message that matches; others are dropped (they stay in self.log)."""
        end = time.monotonic() + timeout
        while True:
            m = self._read(max(0.0, end - time.monotonic()))
            if m is None:
                return None
            if pred(m):
                return m

    def collect(self, pred, first_timeout=10, quiet=0.6, limit=100):
        """Messages that match, from the first one until none came for `quiet` seconds."""
        got = []
        m = self.wait(pred, first_timeout)
        while m is not None and len(got) < limit:
            got.append(m)
            m = self.wait(pred, quiet)
        return got

    def join(self, *chans):
        for c in chans:
            self.send("JOIN %s" % c)
            self.wait(lambda m, c=c: m.command == "366" and m.params[1].lower() == c.lower(), 10)

    def close(self, quit_msg="bye"):
        try:
            self.send("QUIT :%s" % quit_msg)
            self.sock.close()
        except OSError:
            pass


def run_as_nobody():
    """argv prefix that drops root for daemons that refuse it; nothing when not root."""
    if os.getuid() != 0:
        return []
    return ["setpriv", "--reuid=nobody", "--regid=%d" % pwd.getpwnam("nobody").pw_gid, "--clear-groups"]


def give_to_nobody(path):
    if os.getuid() == 0:
        pw = pwd.getpwnam("nobody")
        os.chown(path, pw.pw_uid, pw.pw_gid)


INSPIRCD_CONF = """<config format="xml">
<server name="irc.test" description="kneebot test" network="KneeTest">
<admin name="test" nick="test" email="test@example.invalid">
<bind address="127.0.0.1" port="{plain}" type="clients">
<bind address="127.0.0.1" port="{tls}" type="clients" sslprofile="tls">
<bind address="127.0.0.1" port="{link}" type="servers">
<connect name="main" allow="*" timeout="30" pingfreq="120" hardsendq="32M" softsendq="8M" recvq="32M"
  threshold="1000000" commandrate="1000000000" fakelag="no" localmax="1000" globalmax="1000"
  resolvehostnames="no" useident="no" limit="5000" maxchans="50">
<files motd="{dir}/motd.txt">
<pid file="{dir}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{dir}/inspircd.log">
<dns timeout="1">
<module name="cap">
<module name="ircv3">
<module name="ircv3_accounttag">
<module name="ircv3_ctctags">
<module name="ircv3_servertime">
<module name="ircv3_batch">
<module name="botmode">
<module name="services_account">
<module name="sasl">
<module name="sslinfo">
<module name="spanningtree">
<module name="ssl_gnutls">
<sslprofile name="tls" provider="gnutls" certfile="{dir}/server.pem" keyfile="{dir}/server.key"
  hash="sha256" requestclientcert="yes" dhfile="">
<sasl target="services.test" requiressl="no">
<link name="services.test" ipaddr="127.0.0.1" port="{link}" allowmask="127.0.0.0/8" sendpass="linkpw" recvpass="linkpw">
<uline server="services.test" silent="yes">
<class name="bench" privs="users/flood/no-fakelag users/flood/increased-buffers">
<type name="bench" classes="bench">
<oper name="bench" password="bench" host="*@127.0.0.1" type="bench">
"""

ATHEME_CONF = """loadmodule "modules/protocol/inspircd";
loadmodule "modules/backend/opensex";
loadmodule "modules/crypto/pbkdf2v2";
loadmodule "modules/nickserv/main";
loadmodule "modules/nickserv/register";
loadmodule "modules/nickserv/identify";
loadmodule "modules/nickserv/cert";
loadmodule "modules/saslserv/main";
loadmodule "modules/saslserv/plain";
loadmodule "modules/saslserv/external";
pbkdf2v2 {{ rounds = 10000; }};
serverinfo {{
	name = "services.test"; desc = "Atheme"; numeric = "00A"; recontime = 1;
	netname = "KneeTest"; hidehostsuffix = "users.test"; adminname = "test";
	adminemail = "test@example.invalid"; registeremail = "noreply@example.invalid";
	mta = "/bin/true"; loglevel = {{ error; }}; maxlogins = 20; maxusers = 20; mdlimit = 30;
	emaillimit = 100; emailtime = 300; auth = none; casemapping = rfc1459;
}};
uplink "irc.test" {{ host = "127.0.0.1"; send_password = "linkpw"; receive_password = "linkpw"; port = {link}; }};
nickserv {{ nick = "NickServ"; user = "NickServ"; host = "services.test"; real = "Nicks"; maxnicks = 5; expire = 30; }};
saslserv {{ nick = "SaslServ"; user = "SaslServ"; host = "services.test"; real = "SASL"; }};
general {{
	flood_msgs = 0; flood_time = 10; ratelimit_uses = 0; ratelimit_period = 60; kline_time = 7;
	clone_time = 0; commit_interval = 5; default_clone_allowed = 100; default_clone_warn = 90;
	uplink_sendq_limit = 1048576; language = "en"; immune_level = immune;
}};
"""

NGIRCD_CONF = """[Global]
Name = irc2.test
Info = kneebot test
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = hello
{uid}
[Limits]
MaxNickLength = 30
PingTimeout = 120
PongTimeout = 20
MaxConnectionsIP = 0
[Options]
PAM = no
Ident = no
DNS = no
"""


class Harness:
    """Temp dir, servers and bots; close() kills all of them."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kneebot-irc-")
        os.chmod(self.dir, 0o755)
        self.procs = {}
        self.ports = {}

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def spawn(self, name, argv, **kw):
        out = open(self.path(name + ".out"), "wb")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
        self.procs[name] = p
        return p

    def stop(self, name, sig=signal.SIGTERM, timeout=5):
        p = self.procs.pop(name, None)
        if not p:
            return None
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def close(self, keep=False):
        for name in list(self.procs):
            self.stop(name, signal.SIGKILL, 3)
        if keep:
            print("# kept " + self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- TLS material, made fresh for each run

    def make_certs(self):
        d = self.dir

        def ssl_(*args):
            subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        ssl_("req", "-x509", *ec, "-keyout", d + "/ca.key", "-out", d + "/ca.pem", "-days", "2", "-subj", "/CN=kneebot test CA")
        with open(d + "/san.ext", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        for name in ("server", "client"):
            ssl_("req", *ec, "-keyout", "%s/%s.key" % (d, name), "-out", "%s/%s.csr" % (d, name), "-subj", "/CN=127.0.0.1")
            ssl_("x509", "-req", "-in", "%s/%s.csr" % (d, name), "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key",
                 "-CAcreateserial", "-out", "%s/%s.pem" % (d, name), "-days", "2", "-extfile", d + "/san.ext")
        for f in ("server.key", "server.pem", "client.key"):
            os.chmod(d + "/" + f, 0o644 if f != "client.key" else 0o600)
        give_to_nobody(d + "/server.key")
        fp = subprocess.run(["openssl", "x509", "-in", d + "/client.pem", "-noout", "-fingerprint", "-sha256"],
                            check=True, capture_output=True, text=True).stdout
        self.client_fp = fp.split("=", 1)[1].strip().replace(":", "").lower()

    # --- InspIRCd + Atheme

    def start_inspircd(self, with_atheme=True):
        d = self.path("insp")
        os.makedirs(d, exist_ok=True)
        give_to_nobody(d)
        for f in ("server.pem", "server.key"):
            shutil.copy(self.path(f), d)
            give_to_nobody(d + "/" + f)
        if not self.ports.get("plain"):
            self.ports.update(plain=free_port(), tls=free_port(), link=free_port())
        with open(d + "/motd.txt", "w") as f:
            f.write("kneebot test server\n")
        with open(d + "/inspircd.conf", "w") as f:
            f.write(INSPIRCD_CONF.format(dir=d, **self.ports))
        self.spawn("inspircd", run_as_nobody() + [daemon("inspircd"), "--config=" + d + "/inspircd.conf", "--nofork", "--nopid"])
        self.wait_port(self.ports["plain"])
        if with_atheme:
            self.start_atheme()

    def start_atheme(self):
        d = self.path("atheme")
        os.makedirs(d, exist_ok=True)
        give_to_nobody(d)
        with open(d + "/atheme.conf", "w") as f:
            f.write(ATHEME_CONF.format(link=self.ports["link"]))
        self.spawn("atheme", run_as_nobody() + [daemon("atheme-services"), "-n", "-c", d + "/atheme.conf", "-D", d,
                                                "-l", d + "/atheme.log", "-p", d + "/atheme.pid"])
        # sasl is offered only once Atheme has linked: that is the readiness check
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.sasl_offered():
                return
            time.sleep(0.1)
        raise RuntimeError("Atheme did not link to InspIRCd")

    def sasl_offered(self):
        try:
            with socket.create_connection(("127.0.0.1", self.ports["plain"]), timeout=2) as s:
                s.sendall(b"CAP LS 302\r\n")
                data = b""
                while b"\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return b"sasl=" in data
        except OSError:
            return False

    def register_account(self, nick, password):
        c = Client(self.ports["plain"], nick)
        c.send("PRIVMSG NickServ :REGISTER %s %s@example.invalid" % (password, nick))
        ok = c.wait(lambda m: m.nick == "NickServ" and "registered" in m.text(), 10)
        return c, ok

    # --- ngircd

    def start_ngircd(self):
        d = self.path("ngircd")
        os.makedirs(d, exist_ok=True)
        if not self.ports.get("ngircd"):
            self.ports["ngircd"] = free_port()
        uid = "ServerUID = nobody\nServerGID = %d" % pwd.getpwnam("nobody").pw_gid if os.getuid() == 0 else ""
        with open(d + "/ngircd.conf", "w") as f:
            f.write(NGIRCD_CONF.format(port=self.ports["ngircd"], uid=uid))
        os.chmod(d + "/ngircd.conf", 0o644)
        self.spawn("ngircd", [daemon("ngircd"), "-n", "-f", d + "/ngircd.conf"])
        self.wait_port(self.ports["ngircd"])

    def wait_port(self, port, timeout=15):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nothing listens on port %d" % port)

    # --- the bot

    def start_bot(self, name, binary, config_text, env=None):
        conf = self.path(name + ".conf")
        with open(conf, "w") as f:
            f.write(config_text)
        e = dict(os.environ)
        e.update(env or {})
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.spawn(name, [os.path.join(ROOT, binary), "--config", conf], env=e)
        return conf

    def bot_log(self, name):
        with open(self.path(name + ".out"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, name, needle, timeout=15):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.bot_log(name):
                return True
            if name in self.procs and self.procs[name].poll() is not None:
                return needle in self.bot_log(name)
            time.sleep(0.05)
        return False
