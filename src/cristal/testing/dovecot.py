"""A throwaway Dovecot IMAP server on loopback, for the IMAP connector's tests.

Uses Debian's ``dovecot-imapd`` (``/usr/sbin/dovecot``), started in the
foreground with a configuration generated in a temporary folder: plain-text
logins over 127.0.0.1 only (no TLS, it never leaves the machine), users and
passwords in a passwd-file, Maildir storage, the ACL plugins (``GETACL`` /
``SETACL``) and a shared namespace, so folders one user shares with another
appear as ``shared/OWNER/FOLDER``, and a raw log of every command each user
sends (``commands``). As root the mail processes run as
Dovecot's own ``dovecot`` system user (Dovecot refuses root for them);
otherwise everything runs as the current user. The folder is removed
afterwards.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from cristal.errors import CristalError

DOVECOT = Path("/usr/sbin/dovecot")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TemporaryDovecot:
    """``with TemporaryDovecot({"alice": ("secret", ["hr"])}) as mail: mail.port``."""

    def __init__(self, users: dict[str, tuple[str, list[str]]]) -> None:
        if not DOVECOT.exists():
            raise CristalError("Dovecot not found: run `make test` (installs Debian's dovecot-imapd)")
        self.users = users
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="cristal-dovecot-"))
        self.process: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            account = pwd.getpwnam("dovecot")
            self.user, self.group = account.pw_name, grp.getgrgid(account.pw_gid).gr_name
            self.login_user = "dovenull"
        else:
            account = pwd.getpwuid(os.geteuid())
            self.user, self.group = account.pw_name, grp.getgrgid(account.pw_gid).gr_name
            self.login_user = self.user
        self.uid, self.gid = account.pw_uid, account.pw_gid

    def _config(self) -> str:
        r = self.root
        return f"""
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {self.user}
default_internal_group = {self.group}
default_login_user = {self.login_user}
first_valid_uid = {self.uid}
last_valid_uid = {self.uid}
first_valid_gid = {self.gid}
mail_location = maildir:{r}/mail/%u
mail_plugins = acl
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {r}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}
namespace shared {{
  type = shared
  separator = /
  prefix = shared/%%u/
  location = maildir:{r}/mail/%%u:INDEXPVT={r}/mail/%u/shared/%%u
  subscriptions = no
  list = children
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_acl
  rawlog_dir = {r}/rawlog/%u
}}
plugin {{
  acl = vfile
  acl_shared_dict = file:{r}/state/shared-mailboxes.db
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
  }}
}}
"""

    def start(self) -> TemporaryDovecot:
        r = self.root
        for folder in ("run", "state", "mail", "rawlog"):
            (r / folder).mkdir()
        lines = []
        for name, (password, groups) in self.users.items():
            extra = f"userdb_acl_groups={','.join(groups)}" if groups else ""
            lines.append(f"{name}:{{PLAIN}}{password}:{self.uid}:{self.gid}::{r}/home/{name}::{extra}")
        (r / "users").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (r / "dovecot.conf").write_text(self._config(), encoding="utf-8")
        os.chmod(r, 0o755)  # the unprivileged services reach their sockets through it
        for folder in ("mail", "state", "rawlog"):
            os.chown(r / folder, self.uid, self.gid)
        for name in self.users:
            (r / "rawlog" / name).mkdir()
            os.chown(r / "rawlog" / name, self.uid, self.gid)
        self.process = subprocess.Popen([str(DOVECOT), "-F", "-c", str(r / "dovecot.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace").strip()
                raise CristalError(f"dovecot did not start: {error or self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise CristalError(f"dovecot did not answer on 127.0.0.1:{self.port}: {self.log()}")

    def commands(self, user: str) -> list[str]:
        """Every command ``user`` has sent, session by session in file-name order (Dovecot's rawlog)."""
        lines = []
        for path in sorted((self.root / "rawlog" / user).glob("*.in")):
            lines += path.read_bytes().decode("utf-8", "replace").splitlines()
        return lines

    def log(self) -> str:
        try:
            return (self.root / "dovecot.log").read_text(encoding="utf-8", errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TemporaryDovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
