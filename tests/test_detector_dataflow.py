"""The detector on real-code shapes (issue 21): dataflow inside a function and through module
constants, same-file helpers and helper names, web-route parameters, branches and constants that
decide what reaches a sink, and the coverage gaps (ciphers, ``cert_reqs``, ``os.spawn*``/``os.exec*``,
client constructors).

``DEV_SET`` is the development set: pairs of a vulnerable function and its fixed version, in the
shapes real projects write (a command built in one statement and run by a project helper in
another, a route parameter opened as a path, a parameterised query whose table name is a module
constant). It was written for this work from the issue's examples and common vulnerability-fix
shapes; the rules were tuned on it, so its numbers (``benchmarks/detector_owasp.py``) are a
development figure, not a held-out one.
"""

from __future__ import annotations

import textwrap

import pytest

from warnframe.detector import score
from warnframe.detector.rule_registry import RULES


def _c(code: str) -> str:
    return textwrap.dedent(code).strip("\n") + "\n"


# (id, family, vulnerable, fixed)
DEV_SET: list[tuple[str, str, str, str]] = [
    # ------------------------------------------------------------ SQL injection
    ("sql-format-table-const", "sql_injection", _c('''
        TABLE_NAME = "files"

        class Index:
            def file_id(self, path):
                q = "SELECT file_id FROM {0} WHERE path='{1}';".format(TABLE_NAME, path)
                self.cursor.execute(q)
                return self.cursor.fetchone()
        '''), _c('''
        TABLE_NAME = "files"

        class Index:
            def file_id(self, path):
                q = "SELECT file_id FROM {0} WHERE path=?;".format(TABLE_NAME)
                self.cursor.execute(q, (path,))
                return self.cursor.fetchone()
        ''')),
    ("sql-helper-fstring", "sql_injection", _c('''
        def remove_admin(email):
            execute_query(f"delete from admins where email = '{email}'")
        '''), _c('''
        def remove_admin(email):
            execute_query(f"""delete from admins where email = %s""", (email,))
        ''')),
    ("sql-django-raw", "sql_injection", _c('''
        def find_users(username):
            return User.objects.raw("SELECT * FROM auth_user WHERE username = '%s'" % username)
        '''), _c('''
        def find_users(username):
            return User.objects.raw("SELECT * FROM auth_user WHERE username = %s", [username])
        ''')),
    ("sql-concat-str-id", "sql_injection", _c('''
        def get_order(conn, order_id):
            cur = conn.cursor()
            cur.execute("SELECT * FROM orders WHERE id = " + str(order_id))
            return cur.fetchone()
        '''), _c('''
        def get_order(conn, order_id):
            cur = conn.cursor()
            cur.execute("SELECT * FROM orders WHERE id = %s", (order_id,))
            return cur.fetchone()
        ''')),
    ("sql-sqlalchemy-text", "sql_injection", _c('''
        from sqlalchemy import text

        def count_since(session, since):
            return session.execute(text(f"SELECT count(*) FROM events WHERE ts > '{since}'")).scalar()
        '''), _c('''
        from sqlalchemy import text

        def count_since(session, since):
            return session.execute(text("SELECT count(*) FROM events WHERE ts > :since"), {"since": since}).scalar()
        ''')),
    ("sql-built-in-steps", "sql_injection", _c('''
        def rename(cur, user_id, name):
            sql = "UPDATE users SET "
            sql += "name = '%s' " % name
            sql += "WHERE id = %d" % user_id
            cur.execute(sql)
        '''), _c('''
        def rename(cur, user_id, name):
            sql = "UPDATE users SET name = %s WHERE id = %s"
            cur.execute(sql, (name, user_id))
        ''')),
    ("sql-flask-like", "sql_injection", _c('''
        from flask import request

        @app.route("/search")
        def search():
            q = request.args.get("q", "")
            sql = "SELECT id, title FROM items WHERE title LIKE '%" + q + "%'"
            return jsonify(db.execute(sql).fetchall())
        '''), _c('''
        from flask import request

        @app.route("/search")
        def search():
            q = request.args.get("q", "")
            sql = "SELECT id, title FROM items WHERE title LIKE ?"
            return jsonify(db.execute(sql, ("%" + q + "%",)).fetchall())
        ''')),
    ("sql-self-query-helper", "sql_injection", _c('''
        class Accounts:
            def balance(self, user):
                return self.db.query("SELECT balance FROM accounts WHERE owner = '%s'" % user)
        '''), _c('''
        class Accounts:
            def balance(self, user):
                return self.db.query("SELECT balance FROM accounts WHERE owner = %s", user)
        ''')),
    ("sql-pandas", "sql_injection", _c('''
        import pandas as pd

        def load(con, since):
            return pd.read_sql(f"select * from trades where day >= '{since}'", con)
        '''), _c('''
        import pandas as pd

        def load(con, since):
            return pd.read_sql("select * from trades where day >= %(since)s", con, params={"since": since})
        ''')),
    ("sql-join-in-clause", "sql_injection", _c('''
        def by_ids(cur, ids):
            cur.execute("SELECT * FROM t WHERE id IN (%s)" % ",".join(str(i) for i in ids))
            return cur.fetchall()
        '''), _c('''
        def by_ids(cur, ids):
            marks = ",".join("?" * len(ids))
            cur.execute(f"SELECT * FROM t WHERE id IN ({marks})", ids)
            return cur.fetchall()
        ''')),
    ("sql-order-by", "sql_injection", _c('''
        def listing(cur, column):
            cur.execute("SELECT name, price FROM products ORDER BY " + column)
            return cur.fetchall()
        '''), _c('''
        ALLOWED = {"name": "name", "price": "price"}

        def listing(cur, column):
            cur.execute("SELECT name, price FROM products ORDER BY " + ALLOWED.get(column, "name"))
            return cur.fetchall()
        ''')),
    ("sql-helper-same-file", "sql_injection", _c('''
        import sqlite3

        def _run(sql):
            with sqlite3.connect("app.db") as con:
                return con.execute(sql).fetchall()

        def tags_of(post_id):
            return _run("SELECT tag FROM tags WHERE post = " + post_id)
        '''), _c('''
        import sqlite3

        def _run(sql, params=()):
            with sqlite3.connect("app.db") as con:
                return con.execute(sql, params).fetchall()

        def tags_of(post_id):
            return _run("SELECT tag FROM tags WHERE post = ?", (post_id,))
        ''')),
    # ------------------------------------------------------------ command injection
    ("cmd-run-ssh-helper", "command_injection", _c('''
        class StorwizeHelpers:
            def delete_host(self, host_name):
                ssh_cmd = 'svctask rmhost %s ' % host_name
                out, err = self._run_ssh(ssh_cmd)
                return out
        '''), _c('''
        class StorwizeHelpers:
            def delete_host(self, host_name):
                ssh_cmd = ['svctask', 'rmhost', host_name]
                out, err = self._run_ssh(ssh_cmd)
                return out
        ''')),
    ("cmd-run-command-helper", "command_injection", _c('''
        def unpack(self, archive, dest):
            cmd = f"tar xzf {archive} -C {dest}"
            self.run_command(cmd)
        '''), _c('''
        def unpack(self, archive, dest):
            self.run_command(["tar", "xzf", archive, "-C", dest])
        ''')),
    ("cmd-os-system-percent", "command_injection", _c('''
        import os

        def thumbnail(src, dst):
            os.system("convert %s -resize 128x128 %s" % (src, dst))
        '''), _c('''
        import subprocess

        def thumbnail(src, dst):
            subprocess.run(["convert", src, "-resize", "128x128", dst], check=True)
        ''')),
    ("cmd-popen-shell", "command_injection", _c('''
        import subprocess

        def clone(url, target):
            p = subprocess.Popen("git clone " + url + " " + target, shell=True)
            return p.wait()
        '''), _c('''
        import subprocess

        def clone(url, target):
            p = subprocess.Popen(["git", "clone", "--", url, target])
            return p.wait()
        ''')),
    ("cmd-shlex-quote", "command_injection", _c('''
        import subprocess

        def count_lines(path):
            return subprocess.check_output("wc -l %s" % path, shell=True, text=True)
        '''), _c('''
        import shlex
        import subprocess

        def count_lines(path):
            return subprocess.check_output("wc -l %s" % shlex.quote(path), shell=True, text=True)
        ''')),
    ("cmd-paramiko", "command_injection", _c('''
        def tail_log(client, log_name):
            stdin, stdout, stderr = client.exec_command("tail -n 100 /var/log/" + log_name)
            return stdout.read()
        '''), _c('''
        import shlex

        def tail_log(client, log_name):
            stdin, stdout, stderr = client.exec_command("tail -n 100 /var/log/" + shlex.quote(log_name))
            return stdout.read()
        ''')),
    ("cmd-asyncio-shell", "command_injection", _c('''
        import asyncio

        async def transcode(src, dst):
            proc = await asyncio.create_subprocess_shell(f"ffmpeg -i {src} {dst}")
            await proc.wait()
        '''), _c('''
        import asyncio

        async def transcode(src, dst):
            proc = await asyncio.create_subprocess_exec("ffmpeg", "-i", src, dst)
            await proc.wait()
        ''')),
    ("cmd-spawnlp", "command_injection", _c('''
        import os

        def notify(message):
            os.spawnlp(os.P_WAIT, "sh", "sh", "-c", "notify-send " + message)
        '''), _c('''
        import os

        def notify(message):
            os.spawnlp(os.P_WAIT, "notify-send", "notify-send", message)
        ''')),
    ("cmd-execl", "command_injection", _c('''
        import os

        def extract(archive):
            os.execl("/bin/sh", "sh", "-c", "tar xf " + archive)
        '''), _c('''
        import os

        def extract(archive):
            os.execlp("tar", "tar", "xf", "--", archive)
        ''')),
    ("cmd-helper-same-file", "command_injection", _c('''
        import subprocess

        class Service:
            def _execute(self, cmd):
                return subprocess.check_output(cmd, shell=True)

            def restart(self, name):
                return self._execute("service %s restart" % name)
        '''), _c('''
        import subprocess

        class Service:
            def _execute(self, argv):
                return subprocess.check_output(argv)

            def restart(self, name):
                return self._execute(["service", name, "restart"])
        ''')),
    ("cmd-flask-ping", "command_injection", _c('''
        import os
        from flask import request

        @app.route("/ping")
        def ping():
            host = request.args.get("host")
            return os.popen("ping -c 1 " + host).read()
        '''), _c('''
        import subprocess
        from flask import request

        @app.route("/ping")
        def ping():
            host = request.args.get("host")
            return subprocess.run(["ping", "-c", "1", host], capture_output=True, text=True).stdout
        ''')),
    ("cmd-regex-guard", "command_injection", _c('''
        import subprocess

        def lookup(domain):
            return subprocess.check_output(f"nslookup {domain}", shell=True, text=True)
        '''), _c('''
        import re
        import subprocess

        def lookup(domain):
            if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", domain):
                raise ValueError(domain)
            return subprocess.check_output(f"nslookup {domain}", shell=True, text=True)
        ''')),
    ("cmd-sh-c-list", "command_injection", _c('''
        import subprocess

        def archive(folder):
            subprocess.run(["bash", "-c", f"zip -r out.zip {folder}"], check=True)
        '''), _c('''
        import subprocess

        def archive(folder):
            subprocess.run(["zip", "-r", "out.zip", folder], check=True)
        ''')),
    ("cmd-wildcard-tar", "command_injection", _c('''
        import os

        def backup(dest):
            os.chdir("/srv/uploads")
            os.system("tar czf /backups/uploads.tgz *")
        '''), _c('''
        import os
        import subprocess

        def backup(dest):
            subprocess.run(["tar", "czf", "/backups/uploads.tgz", "--", *os.listdir("/srv/uploads")],
                           cwd="/srv/uploads", check=True)
        ''')),
    ("cmd-argv-script", "command_injection", _c('''
        import os
        import sys

        def main():
            target = sys.argv[1]
            os.system("rm -rf /tmp/cache/" + target)
        '''), _c('''
        import shutil
        import sys

        def main():
            target = sys.argv[1]
            shutil.rmtree("/tmp/cache", ignore_errors=True)
        ''')),
    # ------------------------------------------------------------ path traversal
    ("path-flask-route-param", "path_traversal", _c('''
        @app.route("/raw/<path:name>")
        def raw(name):
            return open(name, 'r').read()
        '''), _c('''
        @app.route("/raw/<path:name>")
        def raw(name):
            return send_from_directory(RAW_DIR, name)
        ''')),
    ("path-send-file-args", "path_traversal", _c('''
        import os
        from flask import request, send_file

        @app.route("/download")
        def download():
            filename = request.args.get("file")
            return send_file(os.path.join(UPLOADS, filename))
        '''), _c('''
        import os
        from flask import request, send_file
        from werkzeug.utils import safe_join

        @app.route("/download")
        def download():
            filename = request.args.get("file")
            return send_file(safe_join(UPLOADS, filename))
        ''')),
    ("path-django-view", "path_traversal", _c('''
        import os
        from django.conf import settings
        from django.http import HttpResponse

        def report(request, name):
            with open(os.path.join(settings.REPORT_DIR, name), "rb") as fh:
                return HttpResponse(fh.read(), content_type="application/pdf")
        '''), _c('''
        import os
        from django.conf import settings
        from django.http import Http404, HttpResponse

        def report(request, name):
            path = os.path.realpath(os.path.join(settings.REPORT_DIR, name))
            if not path.startswith(os.path.realpath(settings.REPORT_DIR) + os.sep):
                raise Http404
            with open(path, "rb") as fh:
                return HttpResponse(fh.read(), content_type="application/pdf")
        ''')),
    ("path-log-dir-concat", "path_traversal", _c('''
        class Logs:
            def read(self, name):
                path = self.log_dir + "/" + name
                with open(path) as f:
                    return f.read()
        '''), _c('''
        import os

        class Logs:
            def read(self, name):
                path = os.path.join(self.log_dir, os.path.basename(name))
                with open(path) as f:
                    return f.read()
        ''')),
    ("path-remove-form", "path_traversal", _c('''
        import os
        from flask import request

        @app.post("/delete")
        def delete():
            os.remove(os.path.join(TMP_DIR, request.form["file"]))
            return "ok"
        '''), _c('''
        import os
        from flask import request
        from werkzeug.utils import secure_filename

        @app.post("/delete")
        def delete():
            os.remove(os.path.join(TMP_DIR, secure_filename(request.form["file"])))
            return "ok"
        ''')),
    ("path-fastapi-fileresponse", "path_traversal", _c('''
        from fastapi.responses import FileResponse

        @router.get("/img/{name}")
        async def image(name: str):
            return FileResponse(f"static/img/{name}")
        '''), _c('''
        from fastapi import HTTPException
        from fastapi.responses import FileResponse

        @router.get("/img/{name}")
        async def image(name: str):
            if ".." in name or "/" in name:
                raise HTTPException(status_code=400)
            return FileResponse(f"static/img/{name}")
        ''')),
    ("path-tar-extract", "path_traversal", _c('''
        import tarfile

        def unpack(archive_path, dest):
            with tarfile.open(archive_path) as tar:
                tar.extractall(dest)
        '''), _c('''
        import tarfile

        def unpack(archive_path, dest):
            with tarfile.open(archive_path) as tar:
                tar.extractall(dest, filter="data")
        ''')),
    ("path-shutil-rmtree", "path_traversal", _c('''
        import os
        import shutil

        def drop_workspace(base, user_dir):
            shutil.rmtree(os.path.join(base, user_dir))
        '''), _c('''
        import os
        import shutil

        def drop_workspace(base, user_dir):
            target = os.path.realpath(os.path.join(base, user_dir))
            if os.path.commonpath([target, os.path.realpath(base)]) != os.path.realpath(base):
                raise ValueError(user_dir)
            shutil.rmtree(target)
        ''')),
    ("path-pathlib-read", "path_traversal", _c('''
        from pathlib import Path
        from flask import request

        @bp.route("/notes")
        def note():
            return (Path("notes") / request.args["id"]).read_text()
        '''), _c('''
        from pathlib import Path
        from flask import request

        @bp.route("/notes")
        def note():
            root = Path("notes").resolve()
            p = (root / request.args["id"]).resolve()
            if not p.is_relative_to(root):
                abort(404)
            return p.read_text()
        ''')),
    # ------------------------------------------------------------ deserialization
    ("deser-request-pickle", "deserialization", _c('''
        import pickle
        from flask import request

        @app.route("/restore", methods=["POST"])
        def restore():
            state = pickle.loads(request.data)
            return str(state)
        '''), _c('''
        import json
        from flask import request

        @app.route("/restore", methods=["POST"])
        def restore():
            state = json.loads(request.data)
            return str(state)
        ''')),
    ("deser-yaml-load-file", "deserialization", _c('''
        import yaml

        def read_config(path):
            with open(path) as fh:
                return yaml.load(fh)
        '''), _c('''
        import yaml

        def read_config(path):
            with open(path) as fh:
                return yaml.safe_load(fh)
        ''')),
    ("deser-cookie-b64", "deserialization", _c('''
        import base64
        import pickle

        def session_from_cookie(cookie):
            data = base64.b64decode(cookie)
            return pickle.loads(data)
        '''), _c('''
        import base64
        import json

        def session_from_cookie(cookie):
            data = base64.b64decode(cookie)
            return json.loads(data)
        ''')),
    ("deser-yaml-fullloader", "deserialization", _c('''
        import yaml

        def parse(doc):
            return yaml.load(doc, Loader=yaml.FullLoader)
        '''), _c('''
        import yaml

        def parse(doc):
            return yaml.load(doc, Loader=yaml.SafeLoader)
        ''')),
    ("deser-torch", "deserialization", _c('''
        import torch

        def load_checkpoint(path):
            return torch.load(path)
        '''), _c('''
        import torch

        def load_checkpoint(path):
            return torch.load(path, weights_only=True)
        ''')),
    ("deser-jsonpickle", "deserialization", _c('''
        import jsonpickle

        def decode_job(payload):
            return jsonpickle.decode(payload)
        '''), _c('''
        import json

        def decode_job(payload):
            return json.loads(payload)
        ''')),
    ("deser-numpy", "deserialization", _c('''
        import numpy as np

        def load_arrays(f):
            return np.load(f, allow_pickle=True)
        '''), _c('''
        import numpy as np

        def load_arrays(f):
            return np.load(f)
        ''')),
    # ------------------------------------------------------------ code injection
    ("eval-request", "code_injection", _c('''
        from flask import request

        @app.route("/calc")
        def calc():
            return str(eval(request.args.get("expr")))
        '''), _c('''
        import ast
        from flask import request

        @app.route("/calc")
        def calc():
            return str(ast.literal_eval(request.args.get("expr")))
        ''')),
    ("exec-formula", "code_injection", _c('''
        def apply_formula(row, formula):
            scope = dict(row)
            exec("result = " + formula, {}, scope)
            return scope["result"]
        '''), _c('''
        from simpleeval import simple_eval

        def apply_formula(row, formula):
            return simple_eval(formula, names=dict(row))
        ''')),
    ("eval-getattr", "code_injection", _c('''
        class Widget:
            def read(self, attr):
                return eval("self." + attr)
        '''), _c('''
        class Widget:
            def read(self, attr):
                return getattr(self, attr)
        ''')),
    ("eval-input", "code_injection", _c('''
        def main():
            value = input("value? ")
            print(eval(value) * 2)
        '''), _c('''
        def main():
            value = input("value? ")
            print(float(value) * 2)
        ''')),
    # ------------------------------------------------------------ weak hash and ciphers (CWE-328 / CWE-327)
    ("hash-md5-password", "weak_hash", _c('''
        import hashlib

        def store(password):
            return hashlib.md5(password.encode()).hexdigest()
        '''), _c('''
        import hashlib
        import os

        def store(password):
            salt = os.urandom(16)
            return salt + hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 600_000)
        ''')),
    ("cipher-arc4", "weak_hash", _c('''
        from Crypto.Cipher import ARC4

        def encrypt(key, data):
            return ARC4.new(key).encrypt(data)
        '''), _c('''
        from Crypto.Cipher import AES

        def encrypt(key, data):
            cipher = AES.new(key, AES.MODE_GCM)
            return cipher.nonce + cipher.encrypt(data)
        ''')),
    ("cipher-des-ecb", "weak_hash", _c('''
        from Crypto.Cipher import DES

        def seal(key, block):
            return DES.new(key, DES.MODE_ECB).encrypt(block)
        '''), _c('''
        from Crypto.Cipher import AES

        def seal(key, block):
            return AES.new(key, AES.MODE_GCM).encrypt(block)
        ''')),
    ("cipher-aes-ecb", "weak_hash", _c('''
        from Crypto.Cipher import AES

        def seal(key, data):
            return AES.new(key, AES.MODE_ECB).encrypt(data)
        '''), _c('''
        from Crypto.Cipher import AES

        def seal(key, data):
            return AES.new(key, AES.MODE_EAX).encrypt(data)
        ''')),
    ("cipher-cryptography-ecb", "weak_hash", _c('''
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        def encryptor(key):
            return Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        '''), _c('''
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        def encryptor(key, iv):
            return Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        ''')),
    ("cipher-cryptography-arc4", "weak_hash", _c('''
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

        def stream(key):
            return Cipher(algorithms.ARC4(key), mode=None).encryptor()
        '''), _c('''
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

        def stream(key, nonce):
            return Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()
        ''')),
    ("cipher-blowfish", "weak_hash", _c('''
        from Crypto.Cipher import Blowfish

        def box(key, iv, data):
            return Blowfish.new(key, Blowfish.MODE_CBC, iv).encrypt(data)
        '''), _c('''
        from Crypto.Cipher import AES

        def box(key, iv, data):
            return AES.new(key, AES.MODE_CBC, iv).encrypt(data)
        ''')),
    # ------------------------------------------------------------ hard-coded credentials
    ("secret-boto3-session", "hardcoded_secret", _c('''
        import boto3

        def s3():
            session = boto3.Session(aws_access_key_id="AKIAJSIE27KKMHXI3BJQ",
                                    aws_secret_access_key="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")
            return session.client("s3")
        '''), _c('''
        import boto3

        def s3():
            session = boto3.Session()
            return session.client("s3")
        ''')),
    ("secret-boto3-client-id", "hardcoded_secret", _c('''
        import boto3

        def client():
            return boto3.client("s3", aws_access_key_id="AKIA2E0A8F3B244C9986", region_name="eu-west-1")
        '''), _c('''
        import os
        import boto3

        def client():
            return boto3.client("s3", aws_access_key_id=os.environ["AWS_KEY_ID"], region_name="eu-west-1")
        ''')),
    ("secret-minio-positional", "hardcoded_secret", _c('''
        from minio import Minio

        def storage():
            return Minio("play.min.io", "Q3AM3UQ867SPQQA43P2F", "zuf+tfteSlswRu7BJ86wtrueekitnifILbZam1KYY3TG")
        '''), _c('''
        import os
        from minio import Minio

        def storage():
            return Minio("play.min.io", os.environ["MINIO_ACCESS"], os.environ["MINIO_SECRET"])
        ''')),
    ("secret-openai-key", "hardcoded_secret", _c('''
        from openai import OpenAI

        client = OpenAI(api_key="sk-proj-8fJ2kLm9QpXw")
        '''), _c('''
        import os
        from openai import OpenAI

        client = OpenAI(api_key=os.environ["OPENAI_API_KEY"])
        ''')),
    # ------------------------------------------------------------ TLS verification
    ("tls-urllib3-none", "tls_verify_off", _c('''
        import urllib3

        def pool():
            return urllib3.PoolManager(cert_reqs="NONE")
        '''), _c('''
        import certifi
        import urllib3

        def pool():
            return urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
        ''')),
    ("tls-urllib3-cert-none", "tls_verify_off", _c('''
        import urllib3

        http = urllib3.PoolManager(cert_reqs='CERT_NONE', assert_hostname=False)
        '''), _c('''
        import urllib3

        http = urllib3.PoolManager(cert_reqs='CERT_REQUIRED')
        ''')),
    ("tls-unverified-context", "tls_verify_off", _c('''
        import ssl
        import urllib.request

        def fetch(url):
            return urllib.request.urlopen(url, context=ssl._create_unverified_context()).read()
        '''), _c('''
        import ssl
        import urllib.request

        def fetch(url):
            return urllib.request.urlopen(url, context=ssl.create_default_context()).read()
        ''')),
    ("tls-requests-verify", "tls_verify_off", _c('''
        import requests

        def status(url):
            return requests.get(url, verify=False, timeout=5).status_code
        '''), _c('''
        import requests

        def status(url):
            return requests.get(url, timeout=5).status_code
        ''')),
]


#: Pairs the rules alone do not find, and the bandit test that finds them (kept for that reason).
BANDIT_ONLY = {"cmd-wildcard-tar": "B609"}


def _families(code: str, use_bandit: bool = False) -> set[str]:
    return {f.rule.partition(".")[0] for f in score(code, use_bandit=use_bandit).findings}


@pytest.mark.parametrize("case", DEV_SET, ids=[c[0] for c in DEV_SET])
def test_dev_set_vulnerable_is_found_and_fixed_is_clean(case):
    name, family, vulnerable, fixed = case
    assert family in _families(vulnerable, name in BANDIT_ONLY), score(vulnerable).findings
    assert family not in _families(fixed, True), score(fixed).findings


# ---------------------------------------------------------------- branches and constants decide

def test_a_constant_branch_is_not_taken_and_a_constant_is_not_a_finding():
    safe = _c('''
        import subprocess
        from flask import request

        @app.route("/x", methods=["POST"])
        def handler():
            param = request.form.get("p") or ""
            num = 86
            if 7 * 42 - num > 200:
                bar = "safe"
            else:
                bar = param
            subprocess.run(f"echo {bar}", shell=True)
        ''')
    assert not score(safe, use_bandit=False).vulnerable
    assert score(safe.replace("> 200", "< 200"), use_bandit=False).vulnerable


def test_containers_keep_what_was_put_where():
    code = _c('''
        import os

        def f(param):
            lst = []
            lst.append("safe")
            lst.append(param)
            lst.append("moresafe")
            lst.pop(0)
            os.system("echo " + lst[{i}])
            m = {{}}
            m["a"] = "x"
            m["b"] = param
            os.system("echo " + m["{k}"])
        ''')
    rules = lambda i, k: {(f.rule, f.line) for f in score(code.format(i=i, k=k), use_bandit=False).findings}  # noqa: E731
    assert rules(1, "a") == set()
    assert rules(0, "b") == {("command_injection.shell_command", 9), ("command_injection.shell_command", 13)}


def test_configparser_and_match_and_ternary_are_followed():
    code = _c('''
        import configparser, os

        def f(param):
            conf = configparser.ConfigParser()
            conf.add_section("s")
            conf.set("s", "a", "a_value")
            conf.set("s", "b", param)
            x = conf.get("s", "{key}")
            guess = "ABC"[{i}]
            match guess:
                case "A":
                    y = param
                case "B":
                    y = "bob"
            z = "c" if 1 + 1 == {two} else param
            os.system(x)
            os.system(y)
            os.system(z)
        ''')
    lines = lambda **kw: sorted(f.line for f in score(code.format(**kw), use_bandit=False).findings)  # noqa: E731
    assert lines(key="a", i=1, two=2) == []
    assert lines(key="b", i=0, two=3) == [16, 17, 18]


def test_comprehensions_and_unknown_calls_carry_what_flows_into_them():
    code = _c('''
        import os
        from flask import request

        @app.route("/x")
        def view():
            names = [n.strip() for n in request.args.getlist("n")]
            os.system("ls " + " ".join(names))
            os.system("ls " + " ".join(n for n in ("a", "b")))
        ''')
    assert [f.line for f in score(code, use_bandit=False).findings] == [7]


def test_a_branch_that_returns_is_left_out_of_the_join():
    code = _c('''
        import os

        def f(name):
            cmd = "ls " + name
            if not name.isalnum():
                cmd = "ls"
            else:
                return None
            os.system(cmd)
        ''')
    assert not score(code, use_bandit=False).vulnerable


@pytest.mark.parametrize("guard,safe", [
    ('if not re.fullmatch(r"[a-z0-9.-]+", host):\n        return None', True),
    ('if not re.match(r"^[a-z0-9.-]+$", host):\n        raise ValueError(host)', True),
    ('if not re.match(r"[a-z0-9.-]+", host):\n        raise ValueError(host)', False),  # not anchored at the end
    ('if host not in ALLOWED:\n        abort(400)', True),
    ('if not host.isalnum():\n        return None', True),
    ('if not host:\n        return None', False),  # not a validation
    ('if host in ALLOWED:\n        pass', False),  # nothing exits: after the if, host may be anything
])
def test_an_early_exit_validation_guard_fixes_the_name(guard, safe):
    code = (f'import os, re\nALLOWED = ("a.example", "b.example")\n\ndef ping(host):\n    {guard}\n'
            '    os.system("ping -c 1 " + host)\n')
    assert score(code, use_bandit=False).vulnerable is not safe, code


def test_inside_a_positive_validation_the_name_is_fixed():
    code = _c('''
        import os
        ALLOWED = {"start", "stop"}

        def service(name, action):
            if action in ALLOWED:
                os.system("service " + name.replace(";", "") + " " + action)
                os.system("logger " + action)
        ''')
    assert [f.line for f in score(code, use_bandit=False).findings] == [6]  # name is not validated


def test_static_route_request_path_is_a_constant():
    code = _c('''
        import os
        from flask import request

        @app.route("/benchmark/x", methods=["POST"])
        def post():
            parts = request.path.split("/")
            os.system("echo " + parts[1])
        ''')
    assert not score(code, use_bandit=False).vulnerable
    assert score(code.replace('"/benchmark/x"', '"/benchmark/<x>"'), use_bandit=False).vulnerable


def test_module_constants_defined_after_the_function_count():
    code = 'def f(cur, p):\n    cur.execute("SELECT a FROM %s WHERE b = \'%s\'" % (T, p))\nT = "t"\n'
    assert score(code, use_bandit=False).vulnerable  # p is a parameter
    safe = 'def f(cur, p):\n    cur.execute("SELECT a FROM %s WHERE b = ?" % T, (p,))\nT = "t"\n'
    assert not score(safe, use_bandit=False).vulnerable


def test_same_file_helper_returning_a_constant_is_fixed():
    code = _c('''
        import os

        def safe_value(name):
            return "bar"

        def f(param):
            os.system("echo " + safe_value(param))
            os.system("echo " + param.strip())
        ''')
    assert [f.line for f in score(code, use_bandit=False).findings] == [8]


def test_helper_sink_fires_at_the_call_with_a_value_from_input_only():
    code = _c('''
        import subprocess

        def run_it(command):
            return subprocess.call(command, shell=True)

        def caller(host):
            run_it("ping " + host)
            run_it("uptime")
        ''')
    found = {(f.rule, f.line) for f in score(code, use_bandit=False).findings}
    assert ("command_injection.shell_true", 4) in found and ("command_injection.shell_true", 7) in found
    assert not any(line == 8 for _, line in found)


# ---------------------------------------------------------------- precision items

def test_one_finding_per_line_and_family_naming_every_engine():
    from warnframe.detector.scorer import _finding, _merged

    lines = ["import os", "os.system('ping ' + host)"]
    ours = _finding("command_injection.shell_command", 2, lines, RULES["command_injection.shell_command"], "rules", (10, 35))
    theirs = _finding("command_injection.bandit_B605", 2, lines, "Starting a process with a shell", "bandit", (10, 36))
    other = _finding("sql_injection.string_built_query", 2, lines, RULES["sql_injection.string_built_query"])
    merged = _merged([theirs, ours, other])
    assert [(f.rule, f.source, f.start, f.end) for f in merged] == [
        ("command_injection.shell_command", "rules+bandit", 10, 36), ("sql_injection.string_built_query", "rules", None, None)]
    assert merged[0].why == RULES["command_injection.shell_command"] + " (also command_injection.bandit_B605)"
    both = score('import boto3\ns = boto3.Session(aws_access_key_id="AKIAJSIE27KKMHXI3BJQ")\n', use_bandit=False)
    assert [(f.rule, f.line) for f in both.findings] == [("hardcoded_secret.literal_credential", 2)]
    assert "hardcoded_secret.token_literal" in both.findings[0].why


def test_bandit_shell_tests_no_longer_duplicate_or_contradict_the_rules():
    v = score("import os\ndef f(host):\n    os.system('ping ' + host)\n    cmd = 'ls'\n    os.system(cmd)\n")
    assert [(f.rule, f.line, f.source) for f in v.findings] == [("command_injection.shell_command", 3, "rules")]


def test_an_imported_eval_is_the_imported_one_only_where_it_is_in_force():
    module = 'eval(a)\nfrom asteval import eval\neval(b)\ndef f(c):\n    return eval(c)\n'
    assert [f.line for f in score(module, use_bandit=False).findings] == [1]  # before the import: the builtin
    local = 'def f(a):\n    from asteval import eval\n    return eval(a)\ndef g(b):\n    return eval(b)\n'
    assert [f.line for f in score(local, use_bandit=False).findings] == [5]  # the import is f's own
    builtins = 'from builtins import eval\ndef f(a):\n    return eval(a)\n'
    assert [f.line for f in score(builtins, use_bandit=False).findings] == [3]


def test_weak_cipher_findings_carry_cwe_327_in_the_weak_hash_family():
    v = score("from Crypto.Cipher import ARC4\ndef f(k):\n    return ARC4.new(k)\n", use_bandit=False)
    assert [(f.rule, f.cwe) for f in v.findings] == [("weak_hash.weak_cipher", "CWE-327")]
    md5 = score("import hashlib\nh = hashlib.md5(b'x')\n", use_bandit=False)
    assert [f.cwe for f in md5.findings] == ["CWE-328"]


# ---------------------------------------------------------------- the text twins of the new rules

CUT_OFF = [
    ("command_injection.shell_command", 'os.execl("/bin/sh", "sh", "-c", "exec " + cmdline)\n'),
    ("command_injection.command_helper", 'ssh_cmd = "svctask rmhost %s " % host\nself._run_ssh(ssh_cmd)\n'),
    ("sql_injection.query_helper", 'execute_query(f"delete from admins where email = \'{email}\'")\n'),
    ("weak_hash.weak_cipher", "c = ARC4.new(key)\n"),
    ("weak_hash.weak_cipher", "c = AES.new(key, AES.MODE_ECB)\n"),
    ("tls_verify_off.cert_none", 'http = urllib3.PoolManager(cert_reqs="NONE")\n'),
]


@pytest.mark.parametrize("rule,code", CUT_OFF, ids=[f"{r}-{i}" for i, (r, _) in enumerate(CUT_OFF)])
def test_new_rules_have_text_twins(rule, code):
    v = score("def broken(:\n" + textwrap.indent(code, "    "), use_bandit=False)
    assert not v.parse_ok and rule in {f.rule for f in v.findings}, v.findings
