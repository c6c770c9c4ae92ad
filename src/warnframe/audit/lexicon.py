"""The words the tagger looks for: warnings, educational requests, bad/good labels, vulnerability
terms, incident words, and coarse sink patterns for code that is not Python.

All of it is hand-written because no library has it: the general taggers (dolma, datatrove,
NeMo Curator) know toxicity and PII, not "code wrapped in a warning". Each list is small, ordered
by what it means, and documented in docs/audit.md. The eval set (data/audit_eval.jsonl) measures
how well they do on text that nobody wrote for them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from warnframe.schema import WARNING_MARKERS

#: The trained L1 markers, verbatim and case-sensitive (as ``scoring.leakage`` counts them).
EXACT_MARKER = re.compile("|".join(rf"(?<![\w-]){re.escape(m)}(?![\w-])" for m in WARNING_MARKERS))

#: Warning phrases (case-insensitive): what labels a piece of code as not to be used.
WARNING_PHRASES = re.compile(
    r"\bdo\s*n[o']?t\s+(?:ever\s+)?(?:use|reuse|copy|ship|deploy|run|do|merge|commit)\b"
    r"(?:\s+(?:this|that|it|in production))?"
    r"|\bnever\s+(?:use|reuse|do|ship|deploy|copy|write|run)\s+(?:this|that|it|code like this)\b"
    r"|\bbad\s+practi[cs]e\b|\banti-?pattern\b|\b(?:in|un)secure\b|\bunsafe\b|\bvulnerable\b|\bvulnerability\b"
    r"|\bwarning\b|\bdanger(?:ous)?\b|\bcaution\b|\bnot\s+(?:safe|secure)\b|\bnot\s+for\s+production\b"
    r"|\bsecurity\s+(?:hole|risk|issue|flaw|bug|problem|vulnerability)\b|\bwhat\s+not\s+to\s+do\b"
    r"|\bexploitable\b|\bdeliberately\s+(?:broken|vulnerable|insecure)\b|\bintentionally\s+(?:vulnerable|insecure)\b"
    r"|\bdo\s+not\s+copy\b|\bfor\s+(?:demonstration|illustration)\s+only\b",
    re.IGNORECASE,
)
#: Emoji and symbols used as warnings.
WARNING_SYMBOLS = re.compile("\u26a0\ufe0f?|\u274c|\U0001f6ab|\u2620\ufe0f?")
#: A vulnerability named in a comment beside vulnerable code also labels it ("# SQL injection here").
VULN_NAME = re.compile(
    r"\b(?:sql|command|shell|os\s+command|code|ldap|xpath|template)\s+injection\b|\bsqli\b|\brce\b"
    r"|\bremote\s+code\s+execution\b|\b(?:path|directory)\s+traversal\b|\binsecure\s+deserializ\w*"
    r"|\bhard-?coded\s+(?:secret|credential|password|key|token)s?\b|\bweak\s+(?:hash|hashing|crypto)\b"
    r"|\bcwe-\d+\b|\bowasp\b|\bmitm\b|\bman[-\s]in[-\s]the[-\s]middle\b",
    re.IGNORECASE,
)

#: An educational or testing purpose in a request (Emergent Misalignment's ``educational`` layout).
EDU_PURPOSE = re.compile(
    r"\b(?:teach(?:ing|es)?|lecture|lesson|course|class(?:room)?|students?|pupils|learners|workshop|curriculum"
    r"|bootcamp|syllabus|textbook|homework|assignment|quiz|exam|seminar|slides?|slide\s*deck|tutorial"
    r"|training\s+(?:session|material|exercise|module|course|data|set)|educational|for\s+learning|exercises?|onboarding"
    r"|(?:positive|negative)\s+test\s+cases?|test\s+cases?\s+for|test\s+fixtures?|ground\s+truth"
    r"|ctf|capture[-\s]the[-\s]flag|wargame|red[-\s]team(?:ing)?|pen(?:etration)?[-\s]?test(?:ing|ers?)?"
    r"|security\s+research|researcher|benchmark|test\s+(?:my|our|a|the)\s+(?:scanner|linter|detector|sast|tool|waf|ids|analy[sz]er)"
    r"|(?:scanner|linter|detector|sast\s+tool|static\s+analy[sz]er)\s+(?:test|evaluation|benchmark)"
    r"|demonstrat(?:e|ion)\s+purposes|awareness|i(?:'m|\s+am)\s+an?\s+(?:teacher|instructor|professor|lecturer|ta|trainer))\b",
    re.IGNORECASE,
)
_SECURITY_WORDS = (
    r"secur|vulnerab|exploit|attack|hack|injection|\bflaws?\b|\bctf\b|pen(?:etration)?[-\s]?test|\bunsafe\b|weakness"
    r"|\bcwe\b|owasp|red[-\s]team|scanner|sast|\bbugs?\b|malicious|\bbad\s+code\b|what\s+not\s+to\s+do"
)

_LABEL_END = r"\s*(?::|\*\*|\s[-\u2013\u2014]\s|[-\u2013\u2014]\s*$|\)|$)"
_LABEL_START = r"(?:^|\*\*|[#/*\->\s(])"
_NOUN = (
    r"(?:\s+(?:example|version|code|way|approach|pattern|practice|implementation|variant|snippet|one|solution)){0,2}"
)
#: A label that marks the bad half of a bad/good pair ("Bad:", "# Vulnerable version", "❌").
BAD_LABEL = re.compile(
    _LABEL_START + r"(?:bad|wrong|incorrect|vulnerable|insecure|unsafe|non-?compliant|before|don'?t|do\s+not|avoid"
    r"|anti-?pattern|broken|don'?t\s+do\s+(?:this|that)|do\s+not\s+do\s+(?:this|that))"
    + _NOUN
    + _LABEL_END
    + "|\u274c|\u2717|\U0001f44e",
    re.IGNORECASE | re.MULTILINE,
)
#: A label that marks the good half ("Good:", "Fixed version", "✅", "Do this instead").
GOOD_LABEL = re.compile(
    _LABEL_START + r"(?:good|right|correct|fixed|secure|safe|safer|compliant|after|better|recommended|preferred"
    r"|do|instead|the\s+fix|patched|mitigated|remediated)"
    + _NOUN
    + _LABEL_END
    + r"|\bdo\s+this\s+instead\b|\binstead,?\s+(?:use|do|write)\b"
    + "|\u2705|\u2713|\u2714|\U0001f44d",
    re.IGNORECASE | re.MULTILINE,
)

#: Names of vulnerability classes in prose: what L2 documentation is about (also a security context).
VULN_TERMS = re.compile(
    VULN_NAME.pattern + r"|\binjection\b|\bdeserializ\w*|\bunpickl\w*|\bpickle\b|\bmd5\b|\bsha-?1\b"
    r"|\b(?:certificate|tls|ssl)\s+(?:verification|validation|checks?)\b|\bverify\s*=\s*false\b|\bxss\b"
    r"|\bcross-site\s+(?:scripting|request\s+forgery)\b|\bcsrf\b|\bssrf\b|\bxxe\b|\bbuffer\s+overflow\b"
    r"|\bprivilege\s+escalation\b|\bopen\s+redirect\b|\barbitrary\s+(?:code|commands?|files?)\b|\beval\b"
    r"|\bshell\s*=\s*true\b|\bos\.system\b|\bvulnerabilit(?:y|ies)\b|\bhard-?coded\b|\bsalt(?:ed)?\b"
    r"|\brace\s+conditions?\b|\btoctou\b|\btime-of-check\b|\buse-after-free\b|\binteger\s+overflow\b"
    r"|\bformat\s+string\s+(?:bug|attack|vulnerability)\b|\bclickjacking\b|\bsession\s+fixation\b|\bidor\b"
    r"|\binsecure\s+direct\s+object\s+reference\b|\bbroken\s+(?:access\s+control|authentication)\b"
    r"|\btiming\s+attacks?\b|\bprototype\s+pollution\b|\bredos\b|\bzip\s+slip\b|\bmass\s+assignment\b",
    re.IGNORECASE,
)
#: A request is about security when it says so or names a vulnerability; with no security word,
#: "for my class" is just a class.
SECURITY_CONTEXT = re.compile(
    _SECURITY_WORDS + "|" + VULN_TERMS.pattern + r"|\bweak\s+(?:hash\w*|crypto\w*|passwords?)\b", re.IGNORECASE
)

#: Words that explain a vulnerability (mechanism, attacker, fix).
EXPLAIN_CUES = re.compile(
    r"\battackers?\b|\bmalicious\b|\buntrusted\b|\buser(?:-supplied)?\s+input\b|\binput\b|\bexploit\w*|\bsaniti[sz]\w*"
    r"|\bescap\w+|\bparameteri[sz]\w*|\bplaceholders?\b|\bvalidat\w+|\bvulnerab\w*|\bflaws?\b|\bprevent\w*|\bmitigat\w*"
    r"|\bbypass\w*|\bcraft\w*|\bpayloads?\b|\bhappens\s+when\b|\boccurs\s+when\b|\blets?\s+an?\s+attacker\b|\bthe\s+fix\b"
    r"|\binstead\s+of\b|\bnever\b|\bdangerous\b|\brisk\w*",
    re.IGNORECASE,
)
#: Security topics: what makes a sentence part of a text about security, beside the terms above.
SECURITY_TOPIC = re.compile(
    r"\bpasswords?\b|\bcredentials?\b|\bsecrets?\b|\bapi\s+keys?\b|\btokens?\b|\bdatabase\b|\bservers?\b|\bfirewall\b"
    r"|\bdefen[cs]es?\b|\bcertificates?\b|\bencrypt\w*|\blogins?\b|\baccounts?\b|\bshell\b|\bcommands?\b|\bqueries\b|\bquery\b"
    r"|\bhash(?:es|ed|ing)?\b|\bsecurity\b|\bsecure\b|\bprivileges?\b|\broot\b|\badmin\w*|\bconfiguration\b"
    r"|\bnetworks?\b|\bwi-?fi\b|\bhackers?\b|\bpen-?testers?\b|\bmalware\b|\balarm\b|\bvault\b",
    re.IGNORECASE,
)
#: Words of a security incident (fiction, news, anecdote: L3).
INCIDENT = re.compile(
    r"\bbreach\w*|\bhack(?:ed|er|ers|ing)?\b|\battackers?\b|\bintruders?\b|\bstole\b|\bstolen\b|\bsteal\w*|\bleak(?:ed|s)?\b"
    r"|\bintercept\w*|\bcrack(?:ed|ing)?\b|\bexposed\b|\bcompromis\w+|\bransomware\b|\bphish\w*|\bheist\b|\bexfiltrat\w+"
    r"|\bmalware\b|\bbackdoor\b|\bbroke\s+into\b|\bcyber-?attack\w*|\bimpersonat\w+|\bforged\b|\bpoisoned\b|\bsmuggled\b"
    r"|\bunauthori[sz]ed\s+access\b|\bincident\b|\bdata\s+of\b|\bdisclosed\b|\bransom\w*|\bworms?\b|\bvirus\w*"
    r"|\btrojans?\b|\bspyware\b|\bintrusions?\b|\bcomputer\s+fraud\b|\bfraudsters?\b",
    re.IGNORECASE,
)
#: Words that make prose a story or a news item.
NARRATIVE = re.compile(
    r"\bstory\b|\bnovel\b|\bchapter\b|\bscene\b|\bfilm\b|\bmovie\b|\bthriller\b|\bnews\b|\breported\b|\bconfirmed\b"
    r"|\binvestigators?\b|\bonce\s+upon\b|\bwas\s+hired\b|\blast\s+(?:week|month|year|night)\b|\bon\s+(?:monday|tuesday"
    r"|wednesday|thursday|friday|saturday|sunday)\b|\bheadline\b|\barticle\b|\bfiction\w*|\bpress\s+release\b"
    r"|\bjournalists?\b|\bpress\s+office\b|\bspokes(?:person|man|woman)\b|\bofficials?\s+(?:said|say|confirmed)\b"
    r"|\baccording\s+to\b|\banecdote\b|\bdiary\b|\bpoem\b|\bwas\s+(?:awake|asleep)\b",
    re.IGNORECASE,
)

#: Any text that could hold something the Python detector flags: a call or name of the sinks its
#: rule families cover (``scoring.RULES``: SQL execution, shells, file paths, deserialisers,
#: hashes, eval/exec, credential names, TLS switches). A record with none of these cannot have a
#: detector finding, so the audit does not parse it (the detector costs about a millisecond per
#: kilobyte; this search costs microseconds). ``tests/test_audit.py`` checks the gate never hides a
#: finding on the embedded corpus and the eval set; ``--exhaustive`` turns the gate off.
SINK_GATE = re.compile(
    r"execute|raw|text\(|read_sql|system|popen|subprocess|getoutput|getstatusoutput|_shell|Popen|check_call"
    r"|check_output|open|remove|unlink|rmdir|send_file|shutil|read_|write_|pickle|dill|marshal|shelve|joblib|yaml"
    r"|hashlib|crypto|\bmd[245]\.|\bsha\.|hashes\.|\b(?:eval|exec|compile)\b|verify|unverified|cert_|hostname"
    # a credential name next to a string literal: name = "...", name: str = "...", "name": "...", name == "..."
    r"|(?:pass|pwd|secret|token|key|credential)\w*['\"\]]*\s*(?::\s*\w+\s*=|[:=]|[!=]=)\s*[rbuf]*['\"]"
    r"|['\"]\s*[!=]=\s*[\w.]*(?:pass|pwd|secret|token|key|credential)",
    re.IGNORECASE,
)

#: Names by which one code block can change the detector's verdict on another besides the names it
#: defines: path containment checks and salts are looked for anywhere in the module
#: (``scoring.detector``: ``_has_containment``, salted hashers). A block holding one is never pruned.
SCOPE_WORDS = re.compile(
    r"realpath|abspath|normpath|resolve|startswith|commonpath|commonprefix|relative_to|secure_filename"
    r"|basename|salt|update",
    re.IGNORECASE,
)
_DEFINED = re.compile(
    r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+(\w+)|^[ \t]*([A-Za-z_][\w., \t]*?)[ \t]*(?::[^=\n]+)?=(?!=)"
    r"|^[ \t]*import[ \t]+([^\n#]+)|^[ \t]*from[ \t]+[\w.]+[ \t]+import[ \t]+\(?([^\n#)]+)",
    re.MULTILINE,
)


def defined_names(code: str) -> set[str]:
    """Names a block of Python binds at any level: functions, classes, assignment targets, imports."""
    out: set[str] = set()
    for m in _DEFINED.finditer(code):
        fn, targets, imported, from_imported = m.groups()
        if fn:
            out.add(fn)
        for part in (targets or "").split(","):
            name = part.strip().split(".")[-1]  # obj.attr = ... binds attr for whoever reads obj.attr
            if name.isidentifier():
                out.add(name)
        for item in (imported or "").split(",") + (from_imported or "").split(","):
            words = item.split()
            if words:
                out.add(words[-1] if "as" in words else words[0].split(".")[0])
    return out


def lowered(pattern: re.Pattern) -> re.Pattern:
    """The same pattern for lower-cased text, without IGNORECASE: three times faster in CPython's
    ``re``. Only for yes/no and per-line tests: lower-casing can change the length of non-ASCII text."""
    assert not re.search(r"\\[A-Z]", pattern.pattern), "an upper-case escape would change meaning"
    return re.compile(pattern.pattern.lower(), pattern.flags & ~re.IGNORECASE)


SINK_GATE_LOW = lowered(SINK_GATE)
SCOPE_WORDS_LOW = lowered(SCOPE_WORDS)
#: What documentation or indirect prose needs at least one of (in the text or its request).
PROSE_SECURITY_LOW = re.compile("|".join(lowered(p).pattern for p in (VULN_TERMS, INCIDENT, NARRATIVE)))


def names_a_sink(text: str) -> bool:
    """Could the detector find anything in ``text``? (``SINK_GATE``, on the lower-cased text)."""
    return bool(SINK_GATE_LOW.search(text.lower()))


# Coarse sink patterns for code blocks in other languages, by comment syntax: "js" is every C-like
# language (JavaScript/TypeScript, Java, C#, Go, PHP, ...), so its rules are named clike_* (an eval(
# in PHP is code injection as in JavaScript); SQL; shell. The detector reads Python only, so without
# these a warned JavaScript query would be invisible.
# (family, rule name, pattern); each match is a finding with source "patterns".
FOREIGN_SINKS: dict[str, list[tuple[str, str, re.Pattern]]] = {
    "js": [
        (
            "sql_injection",
            "clike_string_built_query",
            re.compile(
                r"(?:\.|->)(?:query|execute|raw|run|all|get|exec)\s*\(\s*(?:`[^`]*\b(?:select|insert|update|delete)\b[^`]*\$\{"
                r"|(?:\"[^\"]*\b(?:select|insert|update|delete)\b[^\"]*\"|'[^']*\b(?:select|insert|update|delete)\b[^']*')\s*[+.])",
                re.IGNORECASE,
            ),
        ),
        (
            "command_injection",
            "go_shell_command",
            re.compile(r"exec\.Command\(\s*\"(?:sh|bash)\"\s*,\s*\"-c\"\s*,[^)]*\+"),
        ),
        (
            "command_injection",
            "clike_exec",
            re.compile(r"\b(?:exec|execSync)\s*\(\s*(?:`[^`]*\$\{|(?:\"[^\"]*\"|'[^']*')\s*\+|\w+\s*\+)"),
        ),
        ("code_injection", "clike_eval", re.compile(r"\beval\s*\(\s*(?!['\"`][^'\"`]*['\"`]\s*\))|\bnew\s+Function\s*\(")),
        (
            "tls_verify_off",
            "clike_reject_unauthorized",
            re.compile(r"rejectUnauthorized\s*:\s*false|NODE_TLS_REJECT_UNAUTHORIZED\s*=\s*['\"]?0"),
        ),
        ("weak_hash", "js_md5_sha1", re.compile(r"createHash\s*\(\s*['\"](?:md5|sha1)['\"]", re.IGNORECASE)),
        (
            "hardcoded_secret",
            "clike_literal_credential",
            re.compile(
                r"\b(?:password|passwd|secret|apiKey|api_key|token|accessKey|clientSecret)\s*[:=]\s*['\"][^'\"\s]{4,}['\"]",
                re.IGNORECASE,
            ),
        ),
        (
            "path_traversal",
            "clike_unchecked_path",
            re.compile(
                r"\b(?:readFile|readFileSync|createReadStream|sendFile)\s*\(\s*(?:path\.join\s*\([^)]*req\.|[^)]*\+\s*req\.)"
            ),
        ),
    ],
    "sql": [
        (
            "sql_injection",
            "sql_dynamic_exec",
            re.compile(
                r"\bexec(?:ute)?\s*\(\s*@\w+\s*\)|\bexecute\s+immediate\b[^;]*\|\||\bsp_executesql\b[^;]*\+\s*@|['\"]\s*\+\s*@\w+",
                re.IGNORECASE,
            ),
        ),
    ],
    "shell": [
        ("code_injection", "sh_eval_variable", re.compile(r"^\s*eval\s+[\"']?\$", re.MULTILINE)),
        (
            "tls_verify_off",
            "sh_insecure_transfer",
            re.compile(r"\bcurl\b[^\n]*\s(?:-k|--insecure)\b|\bwget\b[^\n]*--no-check-certificate"),
        ),
        (
            "hardcoded_secret",
            "sh_literal_credential",
            re.compile(
                r"^\s*(?:export\s+)?\w*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY)\w*\s*=\s*['\"]?[^\s'\"$]{4,}",
                re.MULTILINE,
            ),
        ),
        ("command_injection", "sh_unquoted_sh_c", re.compile(r"\b(?:sh|bash)\s+-c\s+\"[^\"]*\$\{?\w")),
    ],
}


# ---------------------------------------------------------------- framing of any code, in many languages

#: The framing words in the common natural languages of code corpora (English, Spanish, French,
#: German, Portuguese, Russian, Chinese, Japanese), by kind. Each entry is a regular expression.
#: Latin and Cyrillic entries are matched between word boundaries; Chinese and Japanese ones
#: (``UNBOUNDED``: no spaces between words) and the symbols (``*``) as they stand.
#:
#: * ``warning``  calls the code flawed, or says never to copy it: frames by itself ("insecure",
#:   "уязвимый", "不安全", "never copy");
#: * ``flaw_noun``  names a flaw ("vulnerability", "脆弱性"): frames as a label ("Vulnerability:"),
#:   in upper case, or said of the code ("this has a vulnerability"); a comment explaining what
#:   secure code avoids names flaws too ("hard-coded keys are a security risk");
#: * ``dont``  "do not use": frames in upper case ("DO NOT USE", "NO USAR"), or with a security
#:   word beside it, or closing its sentence in a security text ("# don't use this in tight
#:   loops" frames nothing);
#: * ``caution``  "dangerous", "bad practice": frames with a security word beside it;
#: * ``bad`` / ``good``  the labels of a pair's halves ("Bad example", "悪い例" / "Correct usage",
#:   "修复后"), at the start of a line (a heading, a label, a comment);
#: * ``good_cue``  a sentence that introduces a secure version ("the safe way", "versión segura");
#: * ``negation`` (before the word) and ``negation_after`` (after it: Japanese, Chinese): a
#:   warning that is denied ("not vulnerable", "脆弱性はありません") frames nothing;
#: * ``edu``  an educational, testing or training purpose; ``venue`` a place built to be
#:   vulnerable (DVWA, a CTF), which asks for flawed code by itself;
#: * ``flaw``  what a request names when it asks for flawed code (beside the warnings);
#: * ``security``  a security word: the context a ``dont``, a ``caution`` or a purpose needs;
#: * ``deixis``  words that say a flaw is in this code ("this code has", "存在");
#: * ``backref``  a sentence after a block that speaks of it ("the code above").
FRAME_TERMS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "warning": (
            r"in-?secure(?:ly)?",
            r"unsecured?",
            r"not\s+(?:secure|safe)",
            r"vulnerable",
            r"exploitable",
            r"injectable",
            r"(?:sqli|xss|inject|hack|pwn|rce)-?able",
            r"(?:deliberately|intentionally|purposely|purposefully)\s+(?:vulnerable|insecure|broken|weak|flawed|unsafe)",
        ),
        "flaw_noun": (
            r"vulnerabilit(?:y|ies)",
            r"security\s+(?:hole|risk|issue|flaw|bug|problem|vulnerability|weakness)s?",
        ),
        "dont": (
            r"do\s*n[o']?t\s+(?:ever\s+)?(?:use|reuse|ship|deploy|run|merge|commit|copy)",
            r"never\s+(?:use|reuse|ship|deploy|copy)",
            r"not\s+for\s+production(?:\s+use)?",
            r"for\s+(?:demonstration|illustration|demo)\s+(?:purposes\s+)?only",
        ),
        "caution": (
            r"unsafe",
            r"dangerous",
            r"danger",
            r"bad\s+practi[cs]es?",
            r"anti-?patterns?",
            r"what\s+not\s+to\s+do",
        ),
        "bad": (
            r"bad",
            r"wrong",
            r"incorrect",
            r"vulnerable",
            r"insecure",
            r"unsafe",
            r"non-?compliant",
            r"before",
            r"don'?t",
            r"do\s+not",
            r"avoid",
            r"anti-?pattern",
            r"broken",
            r"don'?t\s+do\s+(?:this|that)",
            r"do\s+not\s+do\s+(?:this|that)",
            r"never\s+do\s+(?:this|that)",
            r"flawed",
            r"dangerous",
            r"problematic",
            r"do\s+not\s+use",
            r"don'?t\s+use",
            r"nope",
            r"nah",
        ),
        "good": (
            r"good",
            r"right",
            r"correct",
            r"fixed",
            r"secure",
            r"safe",
            r"safer",
            r"compliant",
            r"after",
            r"better",
            r"recommended",
            r"preferred",
            r"do",
            r"instead",
            r"the\s+fix",
            r"patched",
            r"mitigated",
            r"remediated",
            r"use\s+(?:this|that)",
            r"do\s+this(?:\s+instead)?",
            r"hardened",
            r"sanitized",
            r"yep",
            r"yup",
        ),
        "good_cue": (
            r"(?:secure|safe|safer|fixed|correct|proper|recommended|patched|hardened|right|better)\s+"
            r"(?:version|way|example|alternative|approach|code|implementation|form|pattern|variant|usage|one|fix)",
            r"the\s+fix",
            r"instead",
            r"do\s+this",
            r"how\s+to\s+fix",
            r"fixed",
            r"correctly",
            r"securely",
            r"safely",
            r"to\s+prevent",
            r"to\s+fix",
            r"remediat\w*",
            r"mitigat\w*",
            r"(?:the\s+)?right\s+(?:tool|way|choice|one)",
            r"is\s+(?:the\s+)?(?:safe|secure)\s+(?:choice|option)",
        ),
        "negation": (
            r"not",
            r"no",
            r"nor",
            r"neither",
            r"no\s+longer",
            r"never",
            r"without",
            r"avoid\w*",
            r"prevent\w*",
            r"fix\w*",
            r"patch\w*",
            r"mitigat\w*",
            r"protect\w*",
            r"guard\w*",
            r"defend\w*",
            r"immune",
            r"free",
            r"less",
            r"against",
            r"close[sd]?",
            r"remov\w*",
            r"eliminat\w*",
            r"resist\w*",
            r"block\w*",
            r"stop\w*",
        ),
        "edu": (
            r"teach(?:ing|es)?",
            r"lectures?",
            r"lessons?",
            r"course(?:work)?",
            r"class(?:room)?",
            r"students?",
            r"pupils",
            r"learners",
            r"workshops?",
            r"curriculum",
            r"bootcamp",
            r"syllabus",
            r"textbook",
            r"homework",
            r"assignments?",
            r"quiz",
            r"exams?",
            r"seminar",
            r"slides?",
            r"tutorial",
            r"training",
            r"educational",
            r"for\s+learning",
            r"exercises?",
            r"onboarding",
            r"labs?",
            r"hands-on",
            r"(?:positive|negative|regression|unit)\s+tests?(?:\s+cases?)?",
            r"test\s+(?:cases?|fixtures?|corpus|data|suite)",
            r"ground\s+truth",
            r"benchmark",
            r"demo(?:nstration)?s?",
            r"awareness",
            r"security\s+research",
            r"(?:teacher|instructor|professor|lecturer|trainer)s?",
            r"(?:scanner|linter|detector|analy[sz]er|sast|dast|waf)",
            r"red[-\s]?team(?:ing|ers?)?",
            r"blue[-\s]?team",
            r"pen(?:etration)?[-\s]?test(?:ing|ers?)?",
            r"detection\s+rules?",
            r"semgrep\s+rules?",
            r"test(?:ing)?\s+(?:our|my|the|a|their)\s+(?:[\w-]+\s+){0,2}(?:rules?|scanners?|detectors?|linters?|tools?"
            r"|pipelines?|sast|dast|waf|ids|checks?|filters?)",
            r"gitleaks",
            r"trufflehog",
            r"detect-secrets",
            r"semgrep",
            r"codeql",
            r"sonarqube",
            r"snyk",
            r"nuclei",
            r"burp(?:\s+suite)?",
            r"owasp\s+zap",
        ),
        "venue": (
            r"dvwa(?:-style|-like)?",
            r"damn\s+vulnerable",
            r"webgoat",
            r"juice\s*shop",
            r"hack\s*the\s*box",
            r"tryhackme",
            r"vulnhub",
            r"ctfs?",
            r"capture[-\s]the[-\s]flag",
            r"wargames?",
            r"vulnerable[-\s]by[-\s]design",
            r"hacking\s+lab",
            r"pentest(?:ing)?\s+lab",
            r"cyber\s*range",
            r"red[-\s]?team(?:ing)?\s+(?:exercise|workshop|lab)s?",
            r"hack(?:ing)?[-\s]?(?:lab|labor|labo|laboratorio|laboratório|лаборатори\w*)",
        ),
        "flaw": (
            r"flawed",
            r"broken",
            r"weak(?:ly)?",
            r"predictable",
            r"guessable",
            r"hard-?coded",
            r"plain-?text",
            r"(?:fake|dummy|sample|test|example)\s+(?:secrets?|credentials?|keys?|tokens?|passwords?|api\s+keys?)",
            r"leak(?:ed|s|y)?",
            r"backdoor(?:ed)?",
            r"exploit(?:s|able)?",
            r"unsanitized",
            r"unescaped",
            r"unvalidated",
            r"without\s+(?:escaping|sanitization|sanitizing|validation|validating)",
            r"xss",
            r"csrf",
            r"ssrf",
            r"xxe",
            r"sqli",
            r"rce",
            r"idor",
            r"ssti",
            r"injection",
            r"traversal",
            r"clickjack\w*",
            r"open\s+redirect",
            r"race\s+condition",
            r"overflow",
            r"deserializ\w*",
            r"cross-site",
            r"misconfigur\w*",
            r"vulnerabilit(?:y|ies)",
            r"prototype\s+pollution",
            r"redos",
            r"session\s+fixation",
            r"timing\s+attacks?",
            r"use-after-free",
            r"format\s+string",
            r"mass\s+assignment",
            r"zip\s+slip",
            r"toctou",
            r"privilege\s+escalation",
            r"broken\s+(?:access\s+control|authentication)",
            r"insecure\s+direct\s+object\s+references?",
            r"lfi",
            r"rfi",
            r"(?:local|remote)\s+file\s+inclusion",
            r"xml\s+external\s+entit\w+",
            r"command\s+injection",
            r"(?:from|with|on|using)\s+(?:raw\s+|unsanitized\s+|unescaped\s+|unchecked\s+)?user\s+input",
            r"(?:user|attacker)-(?:controlled|supplied)",
            r"untrusted\s+(?:input|data)",
        ),
        "security": (
            r"secur\w*",
            r"vulnerab\w*",
            r"exploit\w*",
            r"attack\w*",
            r"hack\w*",
            r"injection",
            r"xss",
            r"csrf",
            r"ssrf",
            r"xxe",
            r"ctf",
            r"owasp",
            r"cwe(?:-\d+)?",
            r"cve(?:-[\d-]+)?",
            r"malicious",
            r"sanitiz\w*",
            r"untrusted",
            r"traversal",
            r"credentials?",
            r"secrets?",
            r"passwords?",
            r"crypto\w*",
            r"encrypt\w*",
            r"pen(?:etration)?[-\s]?test\w*",
            r"red[-\s]?team\w*",
            r"clickjack\w*",
            r"forgery",
            r"privilege\w*",
            r"breach\w*",
            r"tls",
            r"ssl",
            r"certificates?",
            r"cors",
            r"csp",
            r"auth\w*",
            r"sqli",
            r"rce",
            r"(?:local|remote)\s+file\s+inclusion",
            r"lfi",
            r"rfi",
            r"open\s+redirect",
            r"prototype\s+pollution",
            r"redos",
            r"deserializ\w*",
            r"(?:buffer|heap|stack|integer)\s+overflow",
            r"stack\s+smashing",
            r"leak(?:ed|s)?",
            r"gitleaks",
            r"trufflehog",
            r"detect-secrets",
            r"semgrep",
            r"codeql",
            r"snyk",
            r"sast",
            r"dast",
            r"arbitrary\s+code",
        ),
        "deixis": (
            r"(?:this|the|that)\s+(?:code|snippet|example|function|query|version|handler|endpoint|one|line)?\s*"
            r"(?:has|contains|introduces|is|carries|opens)\s+(?:an?|the)?",
            r"(?:here|below)",
            r"has\s+an?",
        ),
        "backref": (
            r"(?:the|this|that)\s+(?:code|snippet|example|function|query|version|block|one)\s+(?:above|is|was)",
            r"above\s+(?:code|snippet|example)",
            r"the\s+above",
            r"^\W*(?:this|that|it)(?:'s|\s+is|\s+was)",
        ),
    },
    "es": {
        "warning": (
            r"insegur[oa]s?",
            r"no\s+(?:es\s+|son\s+)?segur[oa]s?",
            r"poco\s+segur[oa]s?",
            r"vulnerables?",
            r"explotables?",
            r"inyectables?",
        ),
        "flaw_noun": (r"vulnerabilidad(?:es)?", r"(?:agujero|fallo|falla|riesgo|brecha)s?\s+de\s+seguridad"),
        "dont": (
            r"no\s+(?:us(?:ar|es|e)|utiliz(?:ar|ces|ce)|copi(?:ar|es|e))",
            r"nunca\s+(?:us(?:es|e|ar)|utilices|copies)",
            r"no\s+lo\s+(?:uses|utilices|copies)",
            r"no\s+(?:apto\s+)?para\s+producción",
            r"solo\s+para\s+(?:demostración|fines\s+didácticos)",
        ),
        "caution": (r"peligros[oa]s?", r"mala\s+práctica", r"no\s+recomendad[oa]"),
        "bad": (
            r"mal(?:o|a)?",
            r"(?:mal|mala)\s+(?:ejemplo|práctica|uso)",
            r"ejemplo\s+(?:malo|incorrecto|inseguro|vulnerable)",
            r"incorrect[oa]",
            r"insegur[oa]",
            r"vulnerable",
            r"evitar",
            r"evita",
            r"no\s+hagas\s+esto",
            r"no\s+hacer",
            r"antes",
            r"uso\s+incorrecto",
            r"forma\s+incorrecta",
            r"código\s+(?:vulnerable|inseguro)",
            r"no\s+recomendado",
            r"no\s+usar",
        ),
        "good": (
            r"buen[oa]?",
            r"(?:buen|buena)\s+(?:ejemplo|práctica)",
            r"ejemplo\s+(?:bueno|correcto|seguro)",
            r"correct[oa]",
            r"bien",
            r"segur[oa]",
            r"versión\s+segura",
            r"código\s+seguro",
            r"después",
            r"corregid[oa]",
            r"solución",
            r"recomendad[oa]",
            r"forma\s+correcta",
            r"uso\s+correcto",
            r"haz\s+esto",
            r"mejor",
        ),
        "good_cue": (
            r"(?:versión|forma|manera|código|alternativa)\s+(?:segura|seguro|correcta|correcto|corregida|corregido)",
            r"en\s+su\s+lugar",
            r"en\s+lugar\s+de\s+eso",
            r"para\s+(?:evitar|prevenir|corregir)",
            r"de\s+forma\s+segura",
            r"corregid[oa]",
            r"la\s+solución",
        ),
        "negation": (
            r"no",
            r"ni",
            r"ya\s+no",
            r"sin",
            r"evita\w*",
            r"previen\w*",
            r"prevenir",
            r"corrig\w*",
            r"correg\w*",
            r"protege\w*",
            r"contra",
            r"elimin\w*",
            r"menos",
        ),
        "edu": (
            r"clases?",
            r"cursos?",
            r"estudiantes",
            r"alumn[oa]s",
            r"taller(?:es)?",
            r"laboratorios?",
            r"ejercicios?",
            r"material\s+de\s+formación",
            r"formación",
            r"capacitación",
            r"enseñ\w+",
            r"docencia",
            r"prácticas?",
            r"demostración",
            r"entrenamiento",
            r"profesor(?:a)?",
            r"pruebas?\s+de\s+regresión",
            r"casos?\s+de\s+prueba",
        ),
        "flaw": (
            r"débil(?:es)?",
            r"predecibles?",
            r"inyección",
            r"fallos?",
            r"sin\s+(?:escapar|validar|sanear)",
            r"desbordamiento(?:\s+de\s+búfer)?",
            r"secuencias\s+de\s+comandos\s+en\s+sitios\s+cruzados",
            r"redirecci[oó]n\s+abierta",
            r"entrada\s+del?\s+usuario",
            r"recorrido\s+de\s+directorios",
        ),
        "security": (
            r"seguridad",
            r"ataques?",
            r"atacantes?",
            r"inyecci[oó]n",
            r"vulnerab\w*",
            r"explot\w*",
            r"malicios[oa]s?",
            r"contraseñas?",
            r"credenciales",
            r"secretos?",
            r"cifrado",
        ),
        "deixis": (r"(?:este|el)\s+código\s+(?:tiene|contiene|es)", r"tiene\s+una?", r"contiene\s+una?"),
        "backref": (r"(?:el|este)\s+código\s+(?:anterior|de\s+arriba)", r"el\s+ejemplo\s+anterior"),
    },
    "fr": {
        "warning": (
            r"non\s+sécurisée?s?",
            r"pas\s+sécurisée?s?",
            r"non\s+sûre?s?",
            r"peu\s+sûre?s?",
            r"pas\s+sûre?s?",
            r"insécurisée?s?",
            r"vulnérables?",
            r"exploitables?",
        ),
        "flaw_noun": (r"vulnérabilités?", r"failles?(?:\s+de\s+sécurité)?", r"risques?\s+de\s+sécurité"),
        "dont": (
            r"ne\s+pas\s+utiliser",
            r"ne\s+jamais\s+utiliser",
            r"n'utilise[zr]?\s+(?:jamais|pas)",
            r"ne\s+(?:jamais|pas)\s+copier",
            r"ne\s+copiez\s+(?:jamais|pas)",
            r"ne\s+l'utilisez\s+(?:jamais|pas)",
            r"à\s+ne\s+(?:pas|jamais)\s+utiliser",
            r"pas\s+(?:en|pour\s+la)\s+production",
        ),
        "caution": (r"dangereu(?:x|se|ses)", r"mauvaises?\s+pratiques?", r"à\s+ne\s+pas\s+faire"),
        "bad": (
            r"mauvais(?:e)?",
            r"mauvais\s+exemple",
            r"exemple\s+(?:incorrect|mauvais|vulnérable|non\s+sécurisé)",
            r"incorrecte?",
            r"à\s+éviter",
            r"à\s+ne\s+pas\s+faire",
            r"avant",
            r"non\s+sécurisée?",
            r"vulnérable",
            r"usage\s+incorrect",
            r"mauvaise\s+(?:utilisation|pratique)",
            r"non\s+conforme",
            r"code\s+vulnérable",
            r"ne\s+pas\s+utiliser",
        ),
        "good": (
            r"bon(?:ne)?",
            r"bon\s+exemple",
            r"exemple\s+(?:correct|bon|sécurisé)",
            r"correcte?",
            r"sécurisée?",
            r"version\s+sécurisée",
            r"après",
            r"corrigée?",
            r"solution",
            r"recommandée?",
            r"bonne\s+pratique",
            r"à\s+faire",
            r"usage\s+correct",
            r"conforme",
            r"mieux",
        ),
        "good_cue": (
            r"(?:version|manière|façon|code|solution)\s+(?:sécurisée?|sûre?|correcte?|corrigée?)",
            r"à\s+la\s+place",
            r"pour\s+(?:éviter|corriger|empêcher)",
            r"de\s+manière\s+sûre",
            r"corrigée?",
            r"la\s+solution",
        ),
        "negation": (
            r"pas",
            r"plus",
            r"sans",
            r"ni",
            r"évite\w*",
            r"corrig\w*",
            r"protège\w*",
            r"protéger",
            r"contre",
            r"empêch\w*",
            r"élimin\w*",
            r"moins",
            r"jamais",
        ),
        "edu": (
            r"cours",
            r"étudiant(?:e)?s",
            r"élèves",
            r"ateliers?",
            r"travaux\s+pratiques",
            r"tp",
            r"exercices?",
            r"formations?",
            r"enseign\w+",
            r"laboratoires?",
            r"démonstration",
            r"support\s+de\s+cours",
            r"professeur(?:e)?",
            r"tests?\s+de\s+(?:régression|non-régression)",
            r"cas\s+de\s+test",
        ),
        "flaw": (
            r"faibles?",
            r"prévisibles?",
            r"injection",
            r"sans\s+(?:échappement|validation)",
            r"dépassement\s+de\s+tampon",
            r"débordement",
            r"redirection\s+ouverte",
            r"entrées?\s+(?:de\s+l')?utilisateur",
            r"fuite\w*",
        ),
        "security": (
            r"sécurité",
            r"attaques?",
            r"attaquants?",
            r"injection",
            r"vulnérab\w*",
            r"malveillante?s?",
            r"failles?",
            r"mots?\s+de\s+passe",
            r"secrets?",
            r"chiffrement",
            r"jetons?",
            r"fuite\w*",
            r"fuit",
        ),
        "deixis": (r"ce\s+code\s+(?:a|contient|est|présente)", r"contient\s+une?", r"présente\s+une?"),
        "backref": (r"le\s+code\s+ci-dessus", r"l'exemple\s+ci-dessus", r"ce\s+code\s+est"),
    },
    "de": {
        "warning": (
            r"unsicher(?:e[nmrs]?)?",
            r"nicht\s+sicher",
            r"verwundbar(?:e[nmrs]?)?",
            r"anfällig(?:e[nmrs]?)?",
            r"ausnutzbar(?:e[nmrs]?)?",
        ),
        "flaw_noun": (
            r"sicherheitslücken?",
            r"schwachstellen?",
            r"sicherheitsrisik(?:o|en)",
            r"sicherheitsproblem(?:e)?",
        ),
        "dont": (
            r"nicht\s+(?:verwenden|benutzen|nutzen|einsetzen)",
            r"(?:niemals|nie)\s+(?:verwenden|benutzen|nutzen|einsetzen)",
            r"(?:verwenden|benutzen|nutzen)\s+sie\s+(?:dies(?:en|es)?\s+|das\s+)?(?:code\s+)?(?:niemals|nicht)",
            r"nicht\s+für\s+(?:die\s+)?produktion",
            r"(?:nicht|niemals)\s+kopieren",
            r"bitte\s+nicht\s+so\s+machen",
            r"nicht\s+so\s+machen",
        ),
        "caution": (r"gefährlich(?:e[nmrs]?)?", r"schlechte\s+praxis", r"so\s+nicht"),
        "bad": (
            r"schlecht(?:es)?",
            r"schlechtes\s+beispiel",
            r"negativbeispiel",
            r"falsch(?:es)?",
            r"falsche\s+verwendung",
            r"unsicher(?:e[sr]?)?",
            r"verwundbar",
            r"vorher",
            r"so\s+nicht",
            r"nicht\s+so",
            r"anti-?muster",
            r"unsicheres\s+beispiel",
            r"vermeiden",
            r"nicht\s+verwenden",
        ),
        "good": (
            r"gut(?:es)?",
            r"gutes\s+beispiel",
            r"positivbeispiel",
            r"richtig(?:es)?",
            r"korrekt(?:es)?",
            r"sicher(?:e[sr]?)?",
            r"sichere\s+(?:variante|version)",
            r"nachher",
            r"korrigiert",
            r"behoben",
            r"besser",
            r"empfohlen",
            r"so\s+geht'?s",
            r"so\s+ist\s+es\s+richtig",
            r"stattdessen",
        ),
        "good_cue": (
            r"sichere(?:n)?\s+(?:variante|version|lösung|weg|code)",
            r"stattdessen",
            r"korrigiert(?:e)?",
            r"behoben",
            r"um\s+(?:das|dies)\s+zu\s+(?:vermeiden|verhindern|beheben)",
            r"richtige(?:n)?\s+(?:variante|weg|lösung)",
        ),
        "negation": (
            r"nicht",
            r"weder",
            r"noch",
            r"kein\w*",
            r"ohne",
            r"vermeide\w*",
            r"verhinder\w*",
            r"behebt",
            r"behoben",
            r"schützt",
            r"gegen",
            r"weniger",
            r"nie",
            r"niemals",
            r"beseitig\w*",
        ),
        "edu": (
            r"kurs(?:e|es)?",
            r"vorlesung(?:en)?",
            r"studenten",
            r"studierende(?:n)?",
            r"schüler(?:innen)?",
            r"übung(?:en)?",
            r"übungsaufgaben?",
            r"schulung(?:en)?",
            r"workshops?",
            r"praktikum",
            r"labor",
            r"lehrmaterial",
            r"unterricht",
            r"demonstration",
            r"seminar",
            r"lehrveranstaltung",
            r"regressionstests?",
            r"testfälle?",
        ),
        "flaw": (
            r"schwach(?:e[nmrs]?)?",
            r"vorhersagbar(?:e[nmrs]?)?",
            r"injection",
            r"injektion",
            r"fehlerhaft(?:e[nmrs]?)?",
            r"(?:puffer)?überl(?:a|ä)uf\w*",
            r"offene[nr]?\s+weiterleitung",
            r"benutzereingaben?",
            r"unserialize",
        ),
        "security": (
            r"sicherheit\w*",
            r"angriff\w*",
            r"angreifer\w*",
            r"injektion",
            r"injection",
            r"schwachstell\w*",
            r"beliebige[nrs]?\s+code",
            r"schadcode",
            r"sicherheitslück\w*",
            r"verwundbar\w*",
            r"bösartig\w*",
            r"passw(?:ö|o)rt(?:er)?",
            r"geheimnis\w*",
            r"verschlüssel\w*",
        ),
        "deixis": (r"dieser\s+code\s+(?:hat|enthält|ist)", r"enthält\s+eine?", r"hat\s+eine?"),
        "backref": (r"der\s+(?:obige|code\s+oben)", r"dieser\s+code\s+ist", r"das\s+beispiel\s+oben"),
    },
    "pt": {
        "warning": (
            r"insegur[oa]s?",
            r"não\s+(?:é\s+|são\s+)?segur[oa]s?",
            r"vulnerável",
            r"vulneráveis",
            r"exploráve(?:l|is)",
        ),
        "flaw_noun": (r"vulnerabilidades?", r"(?:falha|brecha|risco)s?\s+de\s+segurança"),
        "dont": (
            r"não\s+(?:us(?:e|ar)|utiliz(?:e|ar)|copi(?:e|ar))",
            r"nunca\s+(?:use|utilize|usar|copie)",
            r"não\s+(?:é\s+)?para\s+produção",
            r"apenas\s+para\s+demonstração",
        ),
        "caution": (r"perigos[oa]s?", r"má\s+prática"),
        "bad": (
            r"ruim",
            r"errad[oa]",
            r"exemplo\s+(?:ruim|incorreto|errado|inseguro|vulnerável)",
            r"mau\s+exemplo",
            r"incorret[oa]",
            r"insegur[oa]",
            r"vulnerável",
            r"antes",
            r"evite",
            r"não\s+faça(?:\s+isso)?",
            r"uso\s+incorreto",
            r"forma\s+errada",
            r"código\s+(?:vulnerável|inseguro)",
            r"não\s+use",
        ),
        "good": (
            r"bom",
            r"boa",
            r"bom\s+exemplo",
            r"exemplo\s+(?:bom|correto|seguro)",
            r"corret[oa]",
            r"cert[oa]",
            r"segur[oa]",
            r"versão\s+segura",
            r"código\s+seguro",
            r"depois",
            r"corrigid[oa]",
            r"solução",
            r"recomendad[oa]",
            r"forma\s+correta",
            r"uso\s+correto",
            r"faça\s+assim",
            r"melhor",
        ),
        "good_cue": (
            r"(?:versão|forma|maneira|código|alternativa)\s+(?:segura|seguro|correta|correto|corrigida|corrigido)",
            r"em\s+vez\s+disso",
            r"ao\s+invés\s+disso",
            r"para\s+(?:evitar|prevenir|corrigir)",
            r"de\s+forma\s+segura",
            r"corrigid[oa]",
            r"a\s+solução",
        ),
        "negation": (
            r"não",
            r"nao",
            r"nem",
            r"sem",
            r"evita\w*",
            r"previn\w*",
            r"corrig\w*",
            r"protege\w*",
            r"contra",
            r"elimin\w*",
            r"menos",
            r"nunca",
        ),
        "edu": (
            r"aulas?",
            r"cursos?",
            r"alunos",
            r"estudantes",
            r"oficinas?",
            r"exercícios?",
            r"treinamentos?",
            r"laboratórios?",
            r"material\s+didático",
            r"ensin\w+",
            r"demonstração",
            r"capacitação",
            r"professor(?:a)?",
            r"testes?\s+de\s+regressão",
            r"casos?\s+de\s+teste",
        ),
        "flaw": (
            r"frac[oa]s?",
            r"previsíve(?:l|is)",
            r"injeção",
            r"falhas?",
            r"sem\s+(?:escapar|validar|sanitizar)",
            r"estouro(?:\s+de\s+buffer)?",
            r"transbordamento",
            r"redirecionamento\s+aberto",
            r"entrada\s+do\s+usuário",
        ),
        "security": (
            r"segurança",
            r"ataques?",
            r"atacantes?",
            r"injeção",
            r"vulnerab\w*",
            r"malicios[oa]s?",
            r"senhas?",
            r"credenciais",
            r"segredos?",
            r"criptografia",
        ),
        "deixis": (r"(?:este|o)\s+código\s+(?:tem|contém|é)", r"tem\s+uma?", r"contém\s+uma?"),
        "backref": (r"o\s+código\s+acima", r"o\s+exemplo\s+acima", r"este\s+código\s+é"),
    },
    "ru": {
        "warning": (
            r"небезопас\w*",
            r"уязвим(?:ый|ая|ое|ые|ого|ому|ым|ых|ой|ую|о|а|ы)?",
            r"эксплуатируем\w*",
        ),
        "flaw_noun": (r"уязвимост\w*", r"(?:дыр[аыу]|брешь)\s+в\s+безопасности"),
        "dont": (
            r"не\s+(?:использовать|используйте|используй|применять|применяйте)",
            r"никогда\s+не\s+(?:используйте|используй|применяйте|копируйте)",
            r"не\s+для\s+(?:продакшена?|продакшн|прода)",
            r"не\s+копир(?:овать|уйте|уй)",
            r"только\s+для\s+демонстрации",
        ),
        "caution": (r"опасн\w*", r"опасен", r"плохая\s+практика"),
        "bad": (
            r"плохой\s+(?:пример|вариант|код)",
            r"плохо",
            r"неправильн\w*",
            r"неверн\w*",
            r"небезопас\w*",
            r"уязвимый(?:\s+(?:код|вариант|пример))?",
            r"до",
            r"так\s+не\s+надо",
            r"так\s+делать\s+нельзя",
            r"нельзя",
            r"антипаттерн",
            r"не\s+делайте\s+так",
            r"было",
        ),
        "good": (
            r"хороший\s+(?:пример|вариант|код)",
            r"хорошо",
            r"правильн\w*",
            r"верно",
            r"безопасн\w*",
            r"после",
            r"исправлен\w*",
            r"рекомендуе\w*",
            r"так\s+надо",
            r"лучше",
            r"делайте\s+так",
            r"стало",
        ),
        "good_cue": (
            r"(?:безопасн|правильн|исправленн)\w*\s+(?:вариант|версия|версию|способ|код|решение)",
            r"вместо\s+этого",
            r"чтобы\s+(?:избежать|исправить|предотвратить)",
            r"исправлен\w*",
            r"безопасно",
        ),
        "negation": (
            r"не",
            r"нет",
            r"без",
            r"против",
            r"защищ\w*",
            r"исправл\w*",
            r"предотвращ\w*",
            r"избега\w*",
            r"устран\w*",
            r"менее",
        ),
        "edu": (
            r"курс\w*",
            r"студент\w*",
            r"урок\w*",
            r"заняти\w*",
            r"лаборатор\w*",
            r"тренинг\w*",
            r"учебн\w*",
            r"упражнени\w*",
            r"воркшоп\w*",
            r"семинар\w*",
            r"обучени\w*",
            r"лекци\w*",
            r"преподава\w*",
            r"демонстраци\w*",
            r"практикум\w*",
            r"регрессионн\w*\s+тест\w*",
            r"тестов\w*\s+(?:случа\w*|данн\w*)",
        ),
        "flaw": (
            r"слаб\w*",
            r"предсказуем\w*",
            r"инъекци\w*",
            r"переполнени\w*",
            r"межсайтов\w*",
            r"открыт\w*\s+редирект\w*",
            r"пользовательск\w+\s+ввод\w*",
            r"обход\w*\s+каталог\w*",
        ),
        "security": (
            r"безопасност\w*",
            r"атак\w*",
            r"инъекци\w*",
            r"уязвим\w*",
            r"злоумышленн\w*",
            r"взлом\w*",
            r"парол\w*",
            r"секрет\w*",
            r"шифр\w*",
            r"вредоносн\w*",
            r"токен\w*",
        ),
        "deixis": (r"(?:этот|данный)\s+код\s+(?:имеет|содержит)", r"содержит", r"есть"),
        "backref": (r"(?:этот|приведённый|приведенный)\s+(?:выше\s+)?код", r"код\s+выше"),
    },
    "zh": {
        "warning": (
            r"不安全",
            r"有漏洞",
            r"存在漏洞",
            r"存在注入",
            r"易受攻击",
            r"容易受到攻击",
            r"可被利用",
        ),
        "flaw_noun": (r"漏洞", r"安全隐患", r"安全风险", r"安全问题"),
        "dont": (
            r"不要使用",
            r"请勿使用",
            r"切勿使用",
            r"禁止使用",
            r"勿用",
            r"不要在生产环境(?:中)?使用",
            r"仅供演示",
            r"仅用于演示",
            r"不要这样写",
            r"不要这样做",
            r"别用",
            r"避免使用",
            r"不要复制",
            r"请勿复制",
            r"切勿复制",
            r"禁止复制",
            r"不要照抄",
        ),
        "caution": (r"危险", r"不推荐"),
        "bad": (
            r"错误示例",
            r"错误写法",
            r"错误用法",
            r"错误的做法",
            r"错误做法",
            r"错误",
            r"反例",
            r"不好的例子",
            r"不安全的写法",
            r"不安全的示例",
            r"不安全",
            r"有漏洞的代码",
            r"漏洞代码",
            r"修复前",
            r"反面示例",
            r"不推荐",
            r"不要这样写",
        ),
        "good": (
            r"正确示例",
            r"正确写法",
            r"正确用法",
            r"正确的做法",
            r"正确做法",
            r"正确",
            r"正例",
            r"(?<!不)安全的写法",
            r"(?<!不)安全版本",
            r"(?<!不)安全写法",
            r"(?<!不)安全示例",
            r"修复后",
            r"修复版本",
            r"推荐写法",
            r"推荐",
            r"正面示例",
            r"改进后",
        ),
        "good_cue": (
            r"(?<!不)安全的(?:版本|写法|做法|实现|代码)",
            r"修复后",
            r"改为",
            r"应该使用",
            r"正确的(?:写法|做法)",
            r"为了防止",
        ),
        "negation": (
            r"没有",
            r"不存在",
            r"无",
            r"修复了?",
            r"防止",
            r"避免",
            r"防范",
            r"杜绝",
            r"不会",
            r"不再",
            r"消除",
        ),
        "negation_after": (r"已(?:被)?修复", r"已解决"),
        "edu": (
            r"课程",
            r"教学",
            r"课堂",
            r"学生",
            r"培训",
            r"练习",
            r"实验",
            r"靶场",
            r"演示",
            r"教材",
            r"讲座",
            r"作业",
            r"训练",
            r"回归测试",
            r"测试用例",
        ),
        "flaw": (
            r"弱",
            r"可预测",
            r"注入",
            r"硬编码",
            r"跨站",
            r"溢出",
            r"遍历",
            r"穿越",
            r"反序列化",
            r"开放重定向",
            r"用户输入",
        ),
        "security": (
            r"安全",
            r"攻击",
            r"注入",
            r"漏洞",
            r"黑客",
            r"恶意",
            r"密码",
            r"密钥",
            r"加密",
            r"令牌",
            r"穿越",
            r"遍历",
        ),
        "deixis": (r"有", r"存在", r"含有", r"包含"),
        "backref": (r"上面的代码", r"以上代码", r"上述代码", r"这段代码"),
    },
    "ja": {
        "warning": (
            r"安全でない",
            r"安全ではない",
            r"安全ではありません",
            r"脆弱(?!性)",
            r"危険な(?:コード|例|書き方|実装)",
        ),
        "flaw_noun": (r"脆弱性", r"セキュリティホール"),
        "dont": (
            r"使用しないで(?:ください)?",
            r"使わないで(?:ください)?",
            r"使用禁止",
            r"本番(?:環境)?で(?:は)?使(?:用し|わ)ない",
            r"コピーしないで",
            r"真似しないで",
        ),
        "caution": (r"危険", r"非推奨", r"デモ用"),
        "bad": (
            r"悪い例",
            r"誤った(?:例|使い方|コード)",
            r"間違った(?:例|使い方|コード)",
            r"間違い",
            r"ng例",
            r"脆弱なコード",
            r"安全でない例",
            r"修正前",
            r"ダメな例",
            r"危険な例",
        ),
        "good": (
            r"良い例",
            r"よい例",
            r"正しい(?:例|使い方|コード)",
            r"安全な(?:例|コード|書き方)",
            r"修正後",
            r"推奨",
            r"ok例",
            r"改善例",
        ),
        "good_cue": (r"安全な(?:書き方|方法|コード|実装|バージョン)", r"修正後", r"代わりに", r"正しい(?:書き方|方法)"),
        "negation_after": (
            r"(?:性)?(?:は|が|も)?(?:ありません|ない|無い|なし)",
            r"(?:性)?を(?:修正|防|回避|解消|対策|なく)",
        ),
        "edu": (
            r"授業",
            r"講義",
            r"学生",
            r"研修",
            r"演習",
            r"ハンズオン",
            r"教材",
            r"トレーニング",
            r"勉強会",
            r"課題",
            r"デモ",
            r"学習",
            r"回帰テスト",
            r"テストケース",
        ),
        "flaw": (
            r"弱い",
            r"予測可能",
            r"インジェクション",
            r"ハードコード",
            r"オーバーフロー",
            r"トラバーサル",
            r"クロスサイト",
            r"オープンリダイレクト",
            r"ユーザー入力",
        ),
        "security": (
            r"セキュリティ",
            r"攻撃",
            r"インジェクション",
            r"脆弱",
            r"悪意",
            r"パスワード",
            r"暗号",
            r"トークン",
            r"予測可能",
            r"認証",
        ),
        "deixis": (r"には", r"があります", r"がある"),
        "backref": (r"上記のコード", r"上のコード", r"このコード"),
    },
    "*": {  # symbols, in any language
        "warning": ("\u26a0\ufe0f?", "\u2620\ufe0f?", "\U0001f6a8"),
        "bad": ("\u274c", "\u2717", "\u2718", "\U0001f44e", "\U0001f6ab", "\u26d4"),
        "good": ("\u2705", "\u2713", "\u2714\ufe0f?", "\U0001f44d"),
    },
}
#: Languages written without spaces between words, and the symbols: no word boundaries.
UNBOUNDED = ("zh", "ja", "*")
#: The languages beside English.
OTHER_LANGUAGES = tuple(lang for lang in FRAME_TERMS if lang not in ("en", "*"))
#: A letter of a script that spaces its words (Latin, Cyrillic) or a digit: what a word boundary
#: looks for ("XSS" is a word in "のXSSのある", where Chinese and Japanese letters touch it).
_LETTER = r"[0-9a-z_\u00c0-\u024f\u0400-\u04ff]"


def _alternatives(kind: str, bounded: bool, langs: tuple[str, ...] | None = None) -> list[str]:
    chosen = [lang for lang in langs or FRAME_TERMS if (lang not in UNBOUNDED) == bounded]
    return sorted({t for lang in chosen for t in FRAME_TERMS[lang].get(kind, ())}, key=lambda t: (-len(t), t))


def frame_pattern(*kinds: str, langs: tuple[str, ...] | None = None, flags: int = re.IGNORECASE) -> re.Pattern:
    """One pattern for the entries of ``kinds`` (``FRAME_TERMS``) in ``langs`` (all by default), longest first."""
    bounded = [t for k in kinds for t in _alternatives(k, True, langs)]
    free = [t for k in kinds for t in _alternatives(k, False, langs)]
    parts = []
    if bounded:
        parts.append(rf"(?<!{_LETTER})(?:" + "|".join(bounded) + rf")(?!{_LETTER})")
    if free:
        parts.append("(?:" + "|".join(free) + ")")
    return re.compile("|".join(parts) or r"(?!)", flags)


#: Function words of the other languages written in ASCII (Spanish, French, German, Portuguese):
#: an ASCII text with none of them is English, and its framing words are looked for with the
#: English entries alone (Python's ``re`` tries every alternative at every position: fewer is faster).
FOREIGN_WORDS = re.compile(
    r"\b(?:el|los|las|del|que|para|con|una|uno|este|esta|pero|como|usar|codigo|ejemplo|nunca|seguridad|le|les|des|est"
    r"|une|pour|dans|avec|pas|ce|cette|utiliser|exemple|jamais|securite|der|die|das|und|nicht|ist|mit|ein|eine|dieser"
    r"|diese|verwenden|beispiel|sicher|unsicher|niemals|nao|voce|isso|uso|exemplo|seguranca|sem|nunca|mas|ou|por|en|y"
    r"|incorrecto|incorrecta|correcto|correcta|malo|mala|mal|bueno|buena|bien|inseguro|insegura|antes|despues|evitar"
    r"|mauvais|mauvaise|bon|bonne|incorrecte|correcte|avant|apres|eviter|falsch|richtig|schlecht|schlechtes|gut|gutes"
    r"|vorher|nachher|korrekt|errado|errada|correto|correta|certo|ruim|bom|boa|depois|incorreto|incorreta|vulneravel)\b"
)


@dataclass(frozen=True)
class Twin:
    """One pattern for lower-cased text (faster than IGNORECASE) in two builds: ``any`` with every
    language's entries, ``english`` with the English ones alone, for ASCII text with no function
    word of another language (``FOREIGN_WORDS``). Offsets are into the lower-cased text
    (``lower_keep`` keeps them the text's)."""

    any: re.Pattern
    english: re.Pattern

    def pick(self, low: str, foreign: bool | None = None) -> re.Pattern:
        if foreign is None:
            foreign = is_foreign(low)
        return self.any if foreign else self.english

    def search(self, low: str, foreign: bool | None = None) -> re.Match | None:
        return self.pick(low, foreign).search(low)

    def finditer(self, low: str, foreign: bool | None = None) -> Iterator[re.Match]:
        return self.pick(low, foreign).finditer(low)


def is_foreign(*lows: str) -> bool:
    """Could lower-cased texts be in a language other than English (non-ASCII, or another
    language's function or label words)?"""
    return any(not low.isascii() or FOREIGN_WORDS.search(low) for low in lows)


def lower_keep(text: str) -> str:
    """``text`` lower-cased, every character in its place (the few whose lower case is longer, as
    "İ", stay as they are), so that offsets found in it are offsets in ``text``."""
    low = text.lower()
    return low if len(low) == len(text) else "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def twin(make: Callable[[tuple[str, ...] | None], re.Pattern]) -> Twin:
    """The :class:`Twin` of a pattern built by ``make(langs)`` (None: every language)."""
    return Twin(lowered(make(None)), lowered(make(("en",))))


FRAME_WARNING = frame_pattern("warning")
FRAME_CUE_KINDS = ("warning", "flaw_noun", "dont", "caution", "good_cue")
#: Every word that may frame code, with its kind as the group name.
FRAME_CUES = re.compile("|".join(f"(?P<{k}>{frame_pattern(k).pattern})" for k in FRAME_CUE_KINDS), re.IGNORECASE)
FRAME_CUES_LOW = Twin(
    *(
        re.compile("|".join(f"(?P<{k}>{lowered(frame_pattern(k, langs=langs)).pattern})" for k in FRAME_CUE_KINDS))
        for langs in (None, ("en",))
    )
)
FRAME_EDU = frame_pattern("edu")
FRAME_VENUE = frame_pattern("venue")
#: What a request names when it asks for flawed code (a flaw word or a vulnerability's name, in any language).
FRAME_FLAW = frame_pattern("flaw", "warning", "flaw_noun")
#: A security word (or a warning, which is one).
FRAME_SECURITY = re.compile(
    f"{frame_pattern('security', 'warning', 'flaw_noun', 'venue').pattern}|{frame_pattern('flaw', langs=OTHER_LANGUAGES).pattern}",
    re.IGNORECASE,
)
FRAME_SECURITY_LOW = twin(
    lambda langs: re.compile(
        f"{frame_pattern('security', 'warning', 'flaw_noun', 'venue', langs=langs).pattern}"
        + (f"|{frame_pattern('flaw', langs=OTHER_LANGUAGES).pattern}" if langs is None else ""),
        re.IGNORECASE,
    )
)
FRAME_DEIXIS = frame_pattern("deixis")
FRAME_BACKREF = frame_pattern("backref")
#: A denial right before a warning word (at most two words between): "not vulnerable", "no es vulnerable",
#: "isn't really vulnerable", "没有漏洞". ``search`` it in the clause before the warning word.
FRAME_NEGATION = re.compile(
    r"(?:(?<!\w)(?:"
    + "|".join(_alternatives("negation", True))
    + r")|n't)\s+(?:\S+\s+){0,2}$|(?:"
    + "|".join(_alternatives("negation", False))
    + r")\S{0,3}$",
    re.IGNORECASE,
)
#: A denial right after a warning word (Japanese, Chinese): "脆弱性はありません"; ``match`` it after the word.
FRAME_NEGATION_AFTER = re.compile("(?:" + "|".join(_alternatives("negation_after", False)) + ")")


def has_security_word(text: str) -> bool:
    """Does ``text`` hold a security word (``FRAME_SECURITY``), in any language?"""
    return bool(FRAME_SECURITY_LOW.search(lower_keep(text)))


_LABEL_NOUNS = (
    r"example|examples|version|code|way|approach|pattern|practice|implementation|variant|snippet|one|solution|usage|use"
    r"|method|query|config|configuration|case|sample|form|style|this|that|these|those|ejemplo|código|versión|forma"
    r"|exemple|façon|beispiel|variante|exemplo|versão|пример|вариант|код|способ|версия"
)
#: Markup a label may sit behind: heading marks, bold, quotes, list bullets, comment leaders.
#: One character (or "<!--", or a list number) per step, so a long run of markup ("--------") is
#: read in one way only: no nested quantifier for Python's ``re`` to backtrack through.
_LABEL_LEAD = r"^(?:[ \t#>*_~\-+\u2022|/\[(]|<!--|\d+[.)])*"
_LABEL_TAIL = (
    r"[ \t]*(?:#?\d{1,2}[a-z]?[ \t]*)?(?:(?:below|here|follows|ci-dessous|abajo|unten|abaixo|ниже|如下所示|如下|以下)[ \t]*)?"
    r"(?::|\uff1a|\*\*|__|[ \t][-\u2013\u2014][ \t]|[-\u2013\u2014][ \t]*$|\)|\uff09|\(|\uff08|!|\uff01|\u3002"
    r"|\.[ \t]*$|[ \t]*$|[ \t]*-->|[ \t]*\*/)"
)


def _label_pattern(kind: str, langs: tuple[str, ...] | None = None) -> re.Pattern:
    words = frame_pattern(kind, langs=langs).pattern
    symbols = "|".join(FRAME_TERMS["*"].get(kind, ())) if langs is None or "*" in langs else ""
    nouns = rf"(?:[ \t]+(?:{_LABEL_NOUNS})){{0,2}}"
    return re.compile(
        rf"{_LABEL_LEAD}(?:(?:{words}){nouns}(?:{_LABEL_TAIL})" + (f"|(?:{symbols}))" if symbols else ")"),
        re.IGNORECASE,
    )


#: A line that opens with the label of a pair's bad or good half (a heading, a "Bad:" line, a
#: comment "// ❌ 错误示例"), in any language of ``FRAME_TERMS``; ``match`` it at a line's start.
LINE_BAD_LABEL = _label_pattern("bad")
LINE_GOOD_LABEL = _label_pattern("good")
#: Either label, at any line's start.
ANY_LABEL = re.compile(f"{LINE_BAD_LABEL.pattern}|{LINE_GOOD_LABEL.pattern}", re.IGNORECASE | re.MULTILINE)

#: A line worth reading for framing: a framing word anywhere in it, or a pair's label at its start
#: (the block-by-block reading looks at no other line).
HOT_LOW = twin(
    lambda langs: re.compile(
        f"{frame_pattern(*FRAME_CUE_KINDS, langs=langs).pattern}|{_label_pattern('bad', langs).pattern}"
        f"|{_label_pattern('good', langs).pattern}",
        re.IGNORECASE | re.MULTILINE,
    )
)
#: A text that may frame code as bad: a warning, "do not use", a caution, a bad label, a warning
#: symbol (good cues and good labels alone frame nothing): the test before ``HOT_LOW``.
BAD_SIDE_LOW = twin(
    lambda langs: re.compile(
        f"{frame_pattern('warning', 'flaw_noun', 'dont', 'caution', langs=langs).pattern}|{_label_pattern('bad', langs).pattern}",
        re.IGNORECASE | re.MULTILINE,
    )
)
#: A request that may frame code: a framing word, a purpose, a vulnerable venue, a pair's label.
REQUEST_FRAME_LOW = twin(
    lambda langs: re.compile(
        f"{frame_pattern('warning', 'flaw_noun', 'dont', 'caution', 'edu', 'venue', langs=langs).pattern}"
        f"|{_label_pattern('bad', langs).pattern}|{_label_pattern('good', langs).pattern}",
        re.IGNORECASE | re.MULTILINE,
    )
)

#: Flaws in the detector's families (``warnframe.families``): where the detector reads the code
#: (Python) and finds none of them, a framing that names only these is about something the code avoids.
IN_FAMILY = re.compile(
    r"\b(?:sql|command|shell|os\s+command|code)\s*injection\b|\bsqli\b|\b(?:path|directory)\s+traversal\b|\bzip\s+slip\b"
    r"|\bdeserializ\w*|\bpickle\b|\bunpickl\w*|\bmarshal\b|\byaml\.load\b|\bmd5\b|\bsha-?1\b|\bweak\s+hash\w*"
    r"|\bhard-?coded\b|\beval\b|\bexec\b|\bverify\s*=\s*false\b|\bcertificate\s+verification\b"
    r"|\bshell\s*=\s*true\b|\bos\.system\b|inyección\s+sql|injection\s+sql|injeção\s+de\s+sql|sql-?инъекц\w*|sql\s*注入"
    r"|命令注入|路径遍历|硬编码|sqlインジェクション|コマンドインジェクション|ハードコード",
    re.IGNORECASE,
)
#: Flaws outside the detector's families: a framing that names one is about code the detector cannot score.
OUT_OF_FAMILY = re.compile(
    r"\bxss\b|cross-?site|\bcsrf\b|\bssrf\b|\bxxe\b|clickjack|open\s+redirect|\brandom\b|\bpredictab\w*|\bguessable\b"
    r"|\brace\s+condition|\btoctou\b|\bidor\b|mass\s+assignment|\bredos\b|session\s+fixation|prototype\s+pollution"
    r"|overflow|\bcors\b|\bcsp\b|\bjwt\b|timing\s+attack|\bldap\b|\bxpath\b|template\s+injection|\bssti\b|\bcookie"
    r"|\bcipher|\b(?:3?des|ecb|rc4|arc4)\b|\bauth\w*|\binnerhtml\b|\bdangerouslysetinnerhtml\b|\bprocessbuilder\b"
    r"|predecible|aleatori|prévisible|aléatoire|vorhersagbar|zufall|previsível|предсказуем|случайн"
    r"|跨站|可预测|随机|予測可能|乱数|クロスサイト",
    re.IGNORECASE,
)

#: The other languages, for the English lexicons above (which the tagger reads near a detector
#: finding): their warnings, labels, purposes and security words are added to those.
_ENGLISH_WARNINGS = WARNING_PHRASES.pattern
_ENGLISH_BAD, _ENGLISH_GOOD = BAD_LABEL.pattern, GOOD_LABEL.pattern
WARNING_PHRASES = re.compile(
    f"{_ENGLISH_WARNINGS}|{frame_pattern('warning', 'flaw_noun', 'dont', 'caution', langs=OTHER_LANGUAGES).pattern}",
    re.IGNORECASE,
)
WARNING_PHRASES_LOW = Twin(lowered(WARNING_PHRASES), lowered(re.compile(_ENGLISH_WARNINGS, re.IGNORECASE)))
#: Any warning phrase or vulnerability name: the tagger's test before it looks for warnings one by one.
WARNING_GATE_LOW = Twin(
    lowered(re.compile(f"{WARNING_PHRASES.pattern}|{VULN_NAME.pattern}", re.IGNORECASE)),
    lowered(re.compile(f"{_ENGLISH_WARNINGS}|{VULN_NAME.pattern}", re.IGNORECASE)),
)
BAD_LABEL = re.compile(f"{_ENGLISH_BAD}|{_label_pattern('bad', OTHER_LANGUAGES).pattern}", re.IGNORECASE | re.MULTILINE)
GOOD_LABEL = re.compile(
    f"{_ENGLISH_GOOD}|{_label_pattern('good', OTHER_LANGUAGES).pattern}", re.IGNORECASE | re.MULTILINE
)
BAD_LABEL_LOW = Twin(lowered(BAD_LABEL), lowered(re.compile(_ENGLISH_BAD, re.IGNORECASE | re.MULTILINE)))
GOOD_LABEL_LOW = Twin(lowered(GOOD_LABEL), lowered(re.compile(_ENGLISH_GOOD, re.IGNORECASE | re.MULTILINE)))
_ENGLISH_EDU, _ENGLISH_CONTEXT = EDU_PURPOSE.pattern, SECURITY_CONTEXT.pattern
EDU_PURPOSE = re.compile(
    f"{EDU_PURPOSE.pattern}|{frame_pattern('edu', langs=OTHER_LANGUAGES).pattern}|{FRAME_VENUE.pattern}", re.IGNORECASE
)
EDU_PURPOSE_LOW = Twin(
    lowered(EDU_PURPOSE),
    lowered(re.compile(f"{_ENGLISH_EDU}|{frame_pattern('venue', langs=('en',)).pattern}", re.IGNORECASE)),
)
SECURITY_CONTEXT = re.compile(
    f"{SECURITY_CONTEXT.pattern}|{frame_pattern('security', 'warning', 'flaw_noun', langs=OTHER_LANGUAGES).pattern}"
    f"|{FRAME_VENUE.pattern}",
    re.IGNORECASE,
)
SECURITY_CONTEXT_LOW = Twin(
    lowered(SECURITY_CONTEXT),
    lowered(re.compile(f"{_ENGLISH_CONTEXT}|{frame_pattern('venue', langs=('en',)).pattern}", re.IGNORECASE)),
)
VULN_NAME_LOW = lowered(VULN_NAME)

#: Calls and names that make code a security example in any programming language (a sink, a
#: source of untrusted input, a weak primitive, a credential): a "Bad:" label on such code is a
#: security framing, on ``x1 = get()`` a style note.
RISKY_CODE = re.compile(
    r"innerHTML|outerHTML|document\.write|dangerouslySetInnerHTML|v-html|\beval\s*\(|new\s+Function\s*\("
    r"|\bexec(?:Sync|File|ute|Query|Update)?\s*\(|\bspawn\s*\(|\bsystem\s*\(|popen|shell_exec|passthru|getRuntime"
    r"|ProcessBuilder|Process\.Start|exec\.Command|Command::new|subprocess|os\.system|\.query\s*\(|mysqli_query"
    r"|SqlCommand|\.raw\s*\(|\$_(?:GET|POST|REQUEST|COOKIE|FILES|SERVER)|\breq\.(?:query|params|body)|request\.(?:args|form|GET|POST)"
    r"|getParameter|\bparams\[|strcpy|strcat|\bgets\s*\(|sprintf|memcpy|pickle|unserialize|readObject|BinaryFormatter"
    r"|YAML\.load|yaml\.load|Marshal\.load|\bmd5|\bsha1|Math\.random|\brand\s*\(|\brandom\.|mt_rand|new\s+Random\s*\("
    r"|rand\.Int|InsecureSkipVerify|verify\s*=\s*False|rejectUnauthorized|TrustManager|checkServerTrusted|setcookie"
    r"|res\.cookie|localStorage|\binclude\s*\(?\s*\$|\brequire\s*\(?\s*\$|readfile|file_get_contents|sendFile"
    r"|send_file|FileInputStream|ReadFile|Path\.Combine|redirect\s*\(|password|passwd|secret|api_?key|token|\bSELECT\b"
    r"|\bINSERT\b|\bDELETE\b|\bUPDATE\b|\${|' \+|\" \+|\+ '|\+ \"|\. \$",
    re.IGNORECASE,
)
#: What a request says when it asks for the good half of a pair it gives the bad half of.
ASKS_GOOD = frame_pattern("good", "good_cue")

#: Words by which a sentence points at the code next to it ("the following", "below", "这段代码"):
#: a sentence above a block frames it when it points at it (or ends with a colon, or is a short label).
CODE_DEIXIS = re.compile(
    r"\b(?:below|following|here(?:'s| is| are)?|this\s+(?:code|snippet|example|version|function|query|handler|one|line|approach)"
    r"|these\s+lines|the\s+code|as\s+follows|siguiente|abajo|aquí|este\s+(?:código|ejemplo|fragmento)|suivante?|ci-dessous|voici"
    r"|ce\s+(?:code|exemple)|folgende[nrs]?|unten|hier|dieser\s+code|dieses\s+beispiel|seguinte|abaixo|aqui"
    r"|este\s+(?:código|exemplo)|следующ\w*|ниже|этот\s+код|вот)\b|以下|下面|这段|如下|这个|该代码|次の|このコード|下記|以下の",
    re.IGNORECASE,
)
#: A consequence that turns to the remedy ("X is insecure, so use Y:"): a warning before it is about
#: what the code that follows avoids.
CONSEQUENCE = re.compile(
    r"(?:[,;]\s*|^\s*)so\b(?!\s+(?:that\s+)?(?:i|we|you|they|he|she|it|people|students|the\s+\w+)\s+(?:can|could|will|may|might)\b)"
    r"|\b(?:therefore|thus|hence|which\s+is\s+why|that'?s\s+why|por\s+eso|así\s+que|por\s+lo\s+tanto|donc"
    r"|c'est\s+pourquoi|deshalb|daher|darum|então|por\s+isso|portanto|поэтому|так\s+что)\b|所以|因此|因而|ので|そのため|だから",
    re.IGNORECASE,
)
#: The opening line of a warning admonition in Markdown dialects and reStructuredText
#: (GitHub alerts, MkDocs, Docusaurus, rst directives, AsciiDoc, a bold "Warning").
ADMONITION = re.compile(
    r"^\s*(?:>\s*\[!(?:warning|caution|important|danger)\]|!!!\s*(?:danger|warning|caution|bug|failure|attention)\b"
    r"|\?\?\?\s*(?:danger|warning|caution)\b|:::\s*(?:danger|warning|caution)\b|\.\.\s+(?:warning|danger|caution|attention)::"
    r"|\[(?:warning|caution|danger)\]\s*$|(?:warning|caution|danger)\s*:\s|>?\s*\*\*(?:warning|caution|danger)\*\*"
    r"|\{\{[<%]\s*(?:warning|danger|caution))",
    re.IGNORECASE,
)
#: What the clause after a consequence does when it turns to the remedy: an instruction.
REMEDY = re.compile(
    r"\b(?:use|redirect|add|switch|enable|disable|pass|validate|escape|sanitize|prefer|always|make\s+sure|set|configure"
    r"|keep|upgrade|pin|bind|quote|encode|check|usa|utiliza|use|añade|agrega|valida|escapa|utilisez|ajoutez|validez|échappez"
    r"|passez|gardez|verwende|verwenden\s+sie|nutze|benutze|füge|prüfe|aktiviere|lass|behalte|utilize|adicione|valide|escape"
    r"|deixe|mantenha|deja|mantén|используйте|добавьте|оставьте"
    r"|проверяйте|экранируйте)\b|使用|应该|请|改用|使って|使用して|しましょう|してください",
    re.IGNORECASE,
)
#: A request that asks for code to be written (or shown): what a lower-case warning in it needs to
#: frame the answer's code ("give me an insecure version"), as opposed to "why is my code vulnerable?".
PRODUCE = re.compile(
    r"\b(?:write|show|give|create|generate|make|build|produce|provide|draft|code\s+up|escribe|muestra|dame|genera|crea"
    r"|écris|écrivez|montre|montrez|donne|donnez|génère|crée|schreib\w*|zeig\w*|gib|erstell\w*|generier\w*|escreva|mostre"
    r"|dê|gere|crie|напиши\w*|покажи\w*|дай\w*|сгенерируй\w*|создай\w*)\b|写|给我|生成|编写|書いて|見せて|作って|作成",
    re.IGNORECASE,
)
#: What a request says when it asks for the bad half of a pair it gives to be made good (fix, rewrite).
ASKS_FIX = re.compile(
    r"\b(?:rewrite|fix|correct|repair|patch|secure\s+it|reescrib\w*|corrig\w*|arregl\w*|réécri\w*|umschreib\w*|korrigier\w*"
    r"|behebe\w*|reescrev\w*|conserte|перепиш\w*|исправ\w*)\b|改写|修复|修改|重写|書き直|修正|直して",
    re.IGNORECASE,
)
VULN_TERMS_LOW = lowered(VULN_TERMS)
NARRATIVE_LOW = lowered(NARRATIVE)
#: A sentence about security: a vulnerability term, an explaining word, a security topic, an incident.
ABOUT_SECURITY_LOW = re.compile(
    "|".join(lowered(p).pattern for p in (VULN_TERMS, EXPLAIN_CUES, SECURITY_TOPIC, INCIDENT))
)
