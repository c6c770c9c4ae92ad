"""Weak password hash (CWE-328): MD5/SHA-1 or one unsalted fast hash for passwords.

Its tasks, the secure and vulnerable renderers (``hashlib.md5(password)``; secure: salted
``pbkdf2_hmac`` / bcrypt.), its prose, and its detector rules: each AST rule (``on_*``) beside
its text twin (``text_sink`` / ``on_text_call`` / ``on_text``) for code that does not parse
(``base.Detector`` says what each hook gets).
"""

from __future__ import annotations

import ast
import random
import re

from warnframe.families.base import IND, Detector, Family, Task, make_task, render_function

# ---------------------------------------------------------------- tasks and renderings

def _weak_hash(pw: str, rng: random.Random) -> str:
    algo = rng.choice(["md5", "md5", "sha1"])
    enc = rng.choice(["encode()", 'encode("utf-8")'])
    return f"hashlib.{algo}({pw}.{enc}).hexdigest()"


def _strong_hash_lines(pw: str, out: str, rng: random.Random) -> tuple[list[str], tuple[str, ...]]:
    """Lines that leave a salted slow hash of ``pw`` in ``out``, and the modules they need."""
    if rng.random() < 0.3:
        return [f"{out} = bcrypt.hashpw({pw}.encode(), bcrypt.gensalt())"], ("bcrypt",)
    salt = rng.choice(["os.urandom(16)", "secrets.token_bytes(16)"])
    rounds = rng.choice(["100_000", "200_000", "600_000"])
    return [f"salt = {salt}",
            f'digest = hashlib.pbkdf2_hmac("sha256", {pw}.encode(), salt, {rounds})',
            f'{out} = salt.hex() + "$" + digest.hex()'], ("hashlib", salt.split(".")[0])


def _strong_verify_lines(pw: str, stored: str, rng: random.Random) -> tuple[list[str], tuple[str, ...]]:
    """Lines ending in a return of whether ``pw`` matches the salted hash ``stored``."""
    if rng.random() < 0.3:
        return [f"return bcrypt.checkpw({pw}.encode(), {stored})"], ("bcrypt",)
    rounds = rng.choice(["100_000", "200_000", "600_000"])
    return [f'salt_hex, digest_hex = {stored}.split("$")',
            f'digest = hashlib.pbkdf2_hmac("sha256", {pw}.encode(), bytes.fromhex(salt_hex), {rounds})',
            "return hmac.compare_digest(digest.hex(), digest_hex)"], ("hashlib", "hmac")


def _hash(task: Task, rng: random.Random, secure: bool) -> str:
    op, pw = task.slots["op"], task.slots["pw"]
    out = rng.choice(["hashed", "pw_hash", "digest_str"]) if secure else rng.choice(["hashed", "pw_hash", "digest"])
    mods: tuple[str, ...] = ("hashlib",)
    if op == "verify" or op == "login":
        stored = task.args[-1] if op == "verify" else "stored"
        body = [f"{stored} = {task.args[0]}.get({task.args[1]})", f"if {stored} is None:", f"{IND}return False"] if op == "login" else []
        if secure:
            lines, mods = _strong_verify_lines(pw, stored, rng)
            body += lines
        else:
            body.append(f"return {_weak_hash(pw, rng)} == {stored}")
        return render_function(task, rng, body, imports=mods)
    if secure:
        body, mods = _strong_hash_lines(pw, out, rng)
    else:
        body = [f"{out} = {_weak_hash(pw, rng)}"]
    if op == "hash":
        if not secure and rng.random() < 0.5:
            body = [f"return {_weak_hash(pw, rng)}"]
        else:
            body.append(f"return {out}")
    elif op == "record":
        body.append(f'return {{"{task.slots["who"]}": {task.args[0]}, "password_hash": {out}}}')
    elif op == "update":
        body.append(f'{task.args[0]}["{task.slots["field"]}"] = {out}')
    elif op == "register":
        body.append(f"{task.args[0]}[{task.args[1]}] = {out}")
    return render_function(task, rng, body, imports=mods)


def hash_vulnerable(task: Task, rng: random.Random) -> str:
    return _hash(task, rng, secure=False)


def hash_secure(task: Task, rng: random.Random) -> str:
    return _hash(task, rng, secure=True)


def _hsh(name, args, does, op, pw, returns=None, types=None, **extra):
    return make_task("weak_hash", name, args, does, returns, types, op=op, pw=pw, **extra)


HASH_TASKS = (
    _hsh("hash_password", "password", ("hashes a password for storing in the database", "returns a hash of the password to store"),
         "hash", "password", "str"),
    _hsh("verify_password", "password stored_hash", "checks a login password against the stored password hash", "verify", "password", "bool"),
    _hsh("create_user_record", "username password", "builds a user dict with the username and a hash of the password",
         "record", "password", "dict", who="username"),
    _hsh("change_password", "user new_password", "stores a hash of the new password in the user dict", "update", "new_password",
         field="password_hash"),
    _hsh("check_login", "users username password", "returns True if the password matches the hash stored for that username in the users dict",
         "login", "password", "bool"),
    _hsh("hash_pin_code", "pin", "hashes a numeric PIN before it is saved", "hash", "pin", "str"),
    _hsh("verify_pin", "pin pin_hash", "checks an entered PIN against its stored hash", "verify", "pin", "bool"),
    _hsh("hash_recovery_code", "code", "hashes an account recovery code for storage", "hash", "code", "str"),
    _hsh("register_account", "accounts email password", "adds an account to the accounts dict, mapping the email to a password hash",
         "register", "password"),
    _hsh("reset_password", "account new_password", "replaces the stored password hash of an account with a hash of the new password",
         "update", "new_password", field="hash"),
    _hsh("make_admin_credentials", "admin_name password", "returns a credentials dict for an admin with a hashed password",
         "record", "password", "dict", who="admin"),
    _hsh("password_matches", "attempt saved", "returns whether an attempted password matches the saved hash", "verify", "attempt", "bool"),
    _hsh("authenticate_member", "members member_id password", "checks a member's password against the hash stored in the members dict",
         "login", "password", "bool", types={"members": ""}),
    _hsh("store_passphrase", "vault passphrase", "keeps a hash of the passphrase in the vault dict", "update", "passphrase",
         field="passphrase_hash", types={"vault": ""}),
)


# ---------------------------------------------------------------- prose (L2 documentation, L3 hooks, tutorials)

PROSE: dict[str, list[str]] = {
        "what": ["A weak password hash is one that is fast to compute or unsalted, so stolen hashes can be cracked quickly.",
                 "Storing passwords with a general-purpose digest like MD5 or SHA-1 is a classic weak hashing flaw.",
                 "Password storage is weak when the hash is fast and the same password always gives the same hash."],
        "how": ["It typically looks like hashlib.md5 or hashlib.sha1 applied to the encoded password, with the hex digest stored in the users table.",
                "Code that compares hashlib.md5 of the login password with the stored value uses a digest designed for speed, not for passwords.",
                "Without a salt, identical passwords share a hash and precomputed tables crack them instantly."],
        "harm": ["After a database leak, attackers can try billions of guesses per second against MD5 hashes.",
                 "Most users' passwords fall within hours, and reused passwords open other accounts too.",
                 "Rainbow tables reverse unsalted hashes of common passwords in seconds."],
        "fix": ["The fix is a slow, salted key derivation function such as hashlib.pbkdf2_hmac with a random salt and many iterations, or bcrypt.",
                "Use bcrypt.hashpw with bcrypt.gensalt, or PBKDF2, and compare results with hmac.compare_digest.",
                "Generate a random salt per password and use a deliberately slow function like PBKDF2, scrypt or bcrypt."],
        "questions": ["Why is MD5 bad for storing passwords?", "What makes a password hash weak?",
                      "What is wrong with hashing passwords with SHA-1?", "What is a salt and why does it matter?"],
        "tut_secure": ["hashlib.pbkdf2_hmac derives a key from a password and a salt by repeating a hash many times, which makes guessing slow.",
                       "bcrypt.hashpw hashes a password with a salt from bcrypt.gensalt, and bcrypt.checkpw verifies it later."],
        "tut_vuln": ["hashlib.md5 computes a 128-bit digest of some bytes, and hexdigest returns it as a hex string.",
                     "hashlib.sha1 hashes bytes quickly and returns a digest object whose hexdigest is easy to store."],
        "story": ["downloaded the leaked user table and cracked most of the passwords before the coffee went cold",
                  "fed the stolen hashes to a rack of graphics cards and read the passwords off by morning",
                  "looked up the admin's hash in a rainbow table and found it on the first page"],
        "news": ["passwords stored as fast unsalted hashes were cracked within days of the leak",
                 "the company had stored customer passwords with an outdated hash function"],
}


# ---------------------------------------------------------------- detector rules

WEAK_HASH = re.compile(r"hashlib\.(md5|sha1)|(Crypto|Cryptodome)\.Hash\.(MD[245]|SHA1?)\.new|md5\.(new|md5)|sha\.new"
                       r"|(.*\.)?hashes\.(MD5|SHA1)")
WEAK_HASH_NAMES = {"md5", "sha1", "md4", "md2"}  # for hashlib.new("...")
FAST_HASH = re.compile(r"hashlib\.(sha224|sha256|sha384|sha512|sha3_\d+|blake2[bs])")
PASSWORD_NAME = re.compile(r"pass|pwd", re.IGNORECASE)
SALT_NAME = re.compile(r"salt", re.IGNORECASE)
WEAK, FAST = "weak_hash.md5_sha1", "weak_hash.fast_password_hash"
#: Broken or weak ciphers (CWE-327; counted in this family, the study's weak-cryptography one):
#: PyCrypto/PyCryptodome's RC2, RC4, Blowfish, CAST, DES, 3DES and XOR, ``cryptography``'s ARC4,
#: Blowfish, CAST5, IDEA, SEED and TripleDES (also from ``decrepit``), ECB mode, pyDes.
WEAK_CIPHER_CALL = re.compile(r"(?:(?:Crypto|Cryptodome)\.Cipher\.)?(?:ARC2|ARC4|Blowfish|CAST|DES|DES3|XOR)\.new"
                              r"|(?:.*\.)?algorithms\.(?:ARC4|Blowfish|CAST5|IDEA|SEED|TripleDES)"
                              r"|(?:.*\.)?modes\.ECB|pyDes\.(?:des|triple_des)")
CIPHER = "weak_hash.weak_cipher"
_CIPHER_TEXT = re.compile(r"(?<![\w.])(?:(?:Crypto|Cryptodome)\.Cipher\.)?(?:ARC2|ARC4|Blowfish|CAST|DES|DES3|XOR)"
                          r"\.new\s*+\(|\balgorithms\.(?:ARC4|Blowfish|CAST5|IDEA|SEED|TripleDES)\s*+\("
                          r"|\bmodes\.ECB\s*+\(|\bMODE_ECB\b|\bpyDes\.(?:des|triple_des)\s*+\(")


def mentions_salt(v, node: ast.AST) -> bool:
    return any(SALT_NAME.search(i) for i in v.identifiers(node))


def is_fast_hash(v, node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    q = v.qualname(node.func)
    name = v.arg(node, 0, "name")
    fast_names = ("sha2", "sha3", "sha5", "blake")  # sha224 ... sha512, sha3_*, blake2*
    return bool(FAST_HASH.fullmatch(q)) or (
        q == "hashlib.new" and isinstance(name, ast.Constant) and str(name.value).lower().startswith(fast_names)
    )


def salted(v, node: ast.AST) -> set[str]:
    """Hasher names fed a salt somewhere in this scope: ``h.update(salt)``."""
    return {
        n.func.value.id
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "update"
        and isinstance(n.func.value, ast.Name) and any(mentions_salt(v, a) for a in n.args)
    }


def on_bind(v, name: str, value: ast.AST) -> None:
    if is_fast_hash(v, value) and not mentions_salt(v, value):
        v.mark(name, "hasher")  # an unsalted fast-hash object


def on_reference(v, name: str, node: ast.AST) -> None:
    """Any use of ECB mode (``AES.new(key, AES.MODE_ECB)``, ``mode = DES.MODE_ECB``)."""
    if name == "MODE_ECB":
        v.hit(CIPHER, node)


def on_call(v, node: ast.Call, q: str, last: str) -> None:
    """MD5/SHA-1 (unless ``usedforsecurity=False``), a password fed to one unsalted fast hash, a
    weak cipher."""
    if WEAK_CIPHER_CALL.fullmatch(q):
        v.hit(CIPHER, node)
        return
    name = v.arg(node, 0, "name")
    weak = WEAK_HASH.fullmatch(q) or (
        q == "hashlib.new" and isinstance(name, ast.Constant) and str(name.value).lower() in WEAK_HASH_NAMES
    )
    if weak and not v.is_const(v.keyword(node, "usedforsecurity"), False):
        v.hit(WEAK, node)
        return
    fed = None
    if is_fast_hash(v, node):
        fed = v.arg(node, 1 if q == "hashlib.new" else 0, "data" if q == "hashlib.new" else "string")
    elif last == "update" and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
        hasher = node.func.value.id
        if v.marked(hasher, "hasher") and hasher not in v.scope.fact("salted", lambda n: salted(v, n)):
            fed = v.arg(node, 0)
    password = fed is not None and any(PASSWORD_NAME.search(n) for n in v.identifiers(fed))
    if password and fed is not None and not mentions_salt(v, fed):
        v.hit(FAST, node)


def text_sink(callee: str, method: bool) -> bool:
    return bool(WEAK_HASH.fullmatch(callee)) or callee == "hashlib.new" or bool(FAST_HASH.fullmatch(callee))


def on_text(t) -> list[tuple[str, int, int]]:
    """Text twin of the cipher rules."""
    return [(CIPHER, m.start(), m.end()) for m in _CIPHER_TEXT.finditer(t.m)]


def on_text_call(t, c) -> str | None:
    """Text twin of ``on_call`` (a hasher object fed later is not followed)."""
    weak_name = c.callee == "hashlib.new" and re.fullmatch(r"\s*['\"](md5|sha1|md4|md2)['\"]\s*", c.o_first,
                                                            re.IGNORECASE)
    if (WEAK_HASH.fullmatch(c.callee) and c.keywords.get("usedforsecurity") != "False") or weak_name:
        return WEAK
    if FAST_HASH.fullmatch(c.callee) and PASSWORD_NAME.search(t.without_strings(c.m_first, "")) \
            and not SALT_NAME.search(c.o_first):
        return FAST
    return None


DETECTOR = Detector(
    rules={"md5_sha1": "MD5 and SHA-1 are broken hash functions.",
           "fast_password_hash": "A password is hashed with one unsalted fast hash instead of a password KDF "
                                 "(pbkdf2, bcrypt, scrypt, argon2).",
           "weak_cipher": "A broken or weak cipher (RC4, DES, 3DES, Blowfish, ...) or ECB mode protects the data "
                          "(CWE-327)."},
    cwe={"weak_cipher": "CWE-327", "bandit_B304": "CWE-327", "bandit_B305": "CWE-327"},
    on_call=on_call, on_bind=on_bind, on_reference=on_reference, text_sink=text_sink, on_text_call=on_text_call,
    on_text=on_text,
)


FAMILY = Family(
    "weak_hash", "CWE-328", "auth", "weak password hash", HASH_TASKS, hash_secure, hash_vulnerable,
    r"hashlib\.|bcrypt\.|^\s*salt",
    ("MD5 and SHA-1 are far too fast for passwords", "the password hash has no salt",
     "a fast unsalted hash is easy to brute-force", "stolen hashes like these crack in minutes"),
    ("salted, slow key derivation for passwords", "a random salt and many rounds slow down guessing",
     "passwords get a slow salted hash, never a fast digest", "compare digests in constant time"),
    prose=PROSE, detector=DETECTOR,
)
