"""docs -- the documentation keeps up with the code.

style.md: "A test fails when a config key or a protocol verb is missing from
the docs."  Every list below is read from the source, never copied into this
file, so adding a key, a verb or a reason without documenting it fails here:

- config keys: the key table (`keys[]` in src/probed/config.c), with its
  row macros expanded, so each row gives name, type, default and whether a
  reload applies it.  Each key must be set in etc/probed.conf, have a row in
  doc/configuration.md and an `.It Cm KEY` entry in doc/probed.conf.5 whose
  type, default and "restart only" mark match the table; none of the three
  may document a key the table does not have.  When PROBED is set,
  `probed -t` must accept a file setting every parsed key to its parsed
  default, which proves the parse right against the program itself.
- protocol verbs: CTL_VERB_LIST in include/codec.h.  Each is in
  doc/protocol.md; each verb probectl offers (its commands[] table in
  src/probectl/probectl.c) is a command in `probectl --help` and a `Cm`
  command in doc/probectl.1.
- reasons: REASON_LIST in include/vocab.h, each in doc/protocol.md and
  doc/verdicts.md.
- error reasons: the string literals that reach the wire as the word after
  "error".  Found by data flow from ctl_fmt_error(): a function that passes
  its own `reason` parameter on to an error formatter (or stores it in a
  `->reason` field) is one too, and every string literal given in that
  position is an error reason; so are literals written as a whole response
  line ("error busy text=...\\n").  Scanned: src/lib/codec.c and
  src/probed/*.c.  Each must be in doc/protocol.md.  classify.c is the
  `probed --classify` filter, whose "error" words go to its stdout, not to a
  client: they must be in doc/probed.8 instead.
- man pages: every doc/*.[1-9] passes `mandoc -T lint -W warning`
  (skipped, with a SKIP line, where mandoc is not installed).
- probed-policy: every option of `probed-policy --help` has its
  `.It Fl x , Fl \\-long` entry in doc/probed-policy.8.

A word counts as mentioned in Markdown when it is written as code
(`word`), as `reason=word` / `error word`, as a whole table cell, or as a
heading.  Failure lines name the document and what it lacks.

Environment: TOP_SRCDIR (default: two levels above this file), PROBECTL
(required for the --help check), PROBED (optional, for the -t cross-check),
PROBED_POLICY (optional, for the probed-policy options check).
"""

import os
import re
import shutil
import subprocess

import harness

suite = harness.Suite("docs")

TOP = os.environ.get("TOP_SRCDIR") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))

# Names outside tooling relies on (design.md): a parse of the key table that
# does not find them all is broken, whatever else it found.
FIXED_KEYS = ("socket", "state_dir", "helo_name", "mail_from",
              "fallback_mail_from", "dns.servers", "smtp.port",
              "smtp.allow_networks")

# Error reasons the protocol has had since version 1 (doc/protocol.md): the
# source scan must find at least these, or the scan itself is broken.
KNOWN_ERRORS = ("empty_request", "unknown_verb", "bad_request",
                "missing_argument", "bad_argument", "line_too_long", "busy",
                "not_authorized")


# ---------------------------------------------------------------- files

def path(rel):
    return os.path.join(TOP, rel)


def source(rel):
    """A source file the checks are derived from: missing means TOP_SRCDIR
    is wrong, which is the harness's problem, not the docs'."""
    try:
        with open(path(rel), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise harness.HardError("cannot read %s (TOP_SRCDIR=%s): %s" %
                                (rel, TOP, e))


def doc(c, rel):
    """A document under test; None (and a failed check) when missing."""
    try:
        with open(path(rel), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        c.check(False, "%s exists" % rel, str(e))
        return None


def listing(words, limit=12):
    words = list(words)
    s = ", ".join(words[:limit])
    if len(words) > limit:
        s += ", ... (%d in all)" % len(words)
    return s


def check_all(c, want, have_fn, what, where):
    """One check per document: every item of want is in it."""
    missing = [w for w in want if not have_fn(w)]
    c.check(not missing, "%s documents every %s%s" % (
        where, what, " (missing: %s)" % listing(missing) if missing else ""),
        "missing from %s: %s" % (where, ", ".join(missing)) if missing else None)


def check_none_extra(c, documented, known, what, where):
    extra = [w for w in documented if w not in known]
    c.check(not extra, "%s documents no %s the code lacks%s" % (
        where, what, " (stale: %s)" % listing(extra) if extra else ""),
        "in %s but not in the code: %s" % (where, ", ".join(extra))
        if extra else None)


# ---------------------------------------------------------------- C text

def strip_comments(text, libconfig=False):
    """C text with comments blanked (newlines kept); strings untouched.
    libconfig: `#` starts a comment too, and `'` is no quote."""
    out = []
    i, n = 0, len(text)
    quotes = "\"" if libconfig else "\"'"
    while i < n:
        ch = text[i]
        if libconfig and ch == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif ch in quotes:
            j = i + 1
            while j < n and text[j] != ch and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def skip_string(text, i):
    """Index just past the string or char literal starting at i."""
    q = text[i]
    i += 1
    while i < len(text) and text[i] != q:
        i += 2 if text[i] == "\\" else 1
    return i + 1


def matching(text, i):
    """Index of the bracket closing the one at i."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[text[i]]]
    i += 1
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            i = skip_string(text, i)
            continue
        if ch in pairs:
            stack.append(pairs[ch])
        elif ch in ")]}":
            if ch != stack.pop():
                raise ValueError("unbalanced %r at offset %d" % (ch, i))
            if not stack:
                return i
        i += 1
    raise ValueError("no closing bracket")


def split_top(text, sep=","):
    """Split on sep outside brackets and literals; empty parts dropped."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            i = skip_string(text, i)
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def c_string(lit):
    """The value of a C string literal (simple escapes only)."""
    m = re.fullmatch(r'"((?:[^"\\]|\\.)*)"', lit.strip())
    if m is None:
        return None
    return re.sub(r"\\(.)", r"\1", m.group(1))


def macros(text):
    """Function-like #defines: name -> (params, body)."""
    out = {}
    joined = re.sub(r"\\\n", " ", text)
    for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(\w+)\(([^)]*)\)(.*)$",
                         joined, re.M):
        out[m.group(1)] = ([p.strip() for p in m.group(2).split(",")],
                           m.group(3).strip())
    return out


def expand(name, args, defs):
    """One level of macro expansion, token-wise outside string literals."""
    params, body = defs[name]
    if len(params) != len(args):
        raise ValueError("%s takes %d arguments, row gives %d" %
                         (name, len(params), len(args)))
    env = dict(zip(params, args))
    pieces = re.split(r'("(?:[^"\\]|\\.)*")', body)
    return "".join(p if p.startswith('"') else
                   re.sub(r"\b\w+\b", lambda m: env.get(m.group(0), m.group(0)), p)
                   for p in pieces)


# ---------------------------------------------------------------- key table

def float_text(v):
    """A float default as config_each_key() writes it: 3 -> "3.0"."""
    s = "%g" % v
    return s if re.search(r"[.en]", s) else s + ".0"


def config_keys():
    """[(name, type, default_as_written_in_a_file, reloadable)] from the
    key table, in table order.  Raises ValueError naming what it could not
    understand."""
    text = strip_comments(source("src/probed/config.c"))
    types = dict(re.findall(r'\[\s*(KT_\w+)\s*\]\s*=\s*"(\w+)"', text))
    if not types:
        raise ValueError("no type_words[] entries ([KT_X] = \"word\") found")
    m = re.search(r"\bstruct\s+key\s+keys\s*\[\s*\]\s*=\s*\{", text)
    if m is None:
        raise ValueError("no `struct key keys[] = {` table found")
    start = m.end() - 1
    body = text[start + 1:matching(text, start)]
    defs = macros(text[:start])
    keys = []
    for row in split_top(body):
        shown = " ".join(row.split())
        mm = re.match(r"(\w+)\s*\(", row)
        if mm and mm.group(1) in defs:
            open_at = row.index("(")
            close_at = matching(row, open_at)
            row = expand(mm.group(1), split_top(row[open_at + 1:close_at]), defs)
        if not (row.startswith("{") and row.endswith("}")):
            raise ValueError("row not understood: %s" % shown)
        fields = {}
        for part in split_top(row[1:-1]):
            fm = re.fullmatch(r"\.(\w+)\s*=\s*(.+)", part, re.S)
            if fm is None:
                raise ValueError("row %s: field %r not understood" % (shown, part))
            fields[fm.group(1)] = fm.group(2).strip()
        name = c_string(fields.get("name", ""))
        kt = fields.get("type")
        if not name or kt not in types:
            raise ValueError("row %s: no name or unknown type" % shown)
        word = types[kt]
        if kt == "KT_STRLIST":
            # def_s holds the default elements, space-separated
            s = c_string(fields.get("def_s", '""'))
            if s is None:
                raise ValueError("row %s: def_s is not a literal" % shown)
            default = ("[ %s ]" % ", ".join('"%s"' % w for w in s.split())
                       if s.split() else "[ ]")
        elif kt == "KT_BOOL":
            default = "true" if int(fields.get("def_i", "0"), 0) else "false"
        elif kt == "KT_INT":
            default = str(int(fields.get("def_i", "0"), 0))
        elif kt == "KT_FLOAT":
            default = float_text(float(fields.get("def_f", "0")))
        else:
            s = c_string(fields.get("def_s", '""'))
            if s is None:
                raise ValueError("row %s: def_s is not a literal" % shown)
            default = '"%s"' % s
        reloadable = fields.get("reloadable", "false") == "true"
        keys.append((name, word, default, reloadable))
    return keys


# ---------------------------------------------------------------- documents

def md_mentions(text, word, prefixes=()):
    """Is word written in Markdown as code, a table cell or a heading (or
    after one of prefixes, e.g. "reason=")?"""
    w = re.escape(word)
    pats = [r"`%s`" % w,
            r"\|[ \t]*%s[ \t]*\|" % w,
            r"^#+\s+`?%s`?\s*$" % w]
    pats += [r"(?<![\w=])%s%s(?![\w])" % (re.escape(p), w) for p in prefixes]
    return any(re.search(p, text, re.M) for p in pats)


def sample_settings(text):
    """Dotted names set in a libconfig sample written one setting a line:
    `group:` or `group = {` (its `{` there or on the next line) opens a
    group, `};` closes it.  One-line groups are not understood (the sample
    has none; the unit test of config.c requires that layout)."""
    names, group = [], None
    for line in strip_comments(text, libconfig=True).splitlines():
        s = line.strip()
        if not s or s == "{":
            continue
        if s.startswith("}"):
            group = None
            continue
        m = re.match(r"([A-Za-z*][\w*-]*)\s*[:=]\s*(.*)$", s)
        if m is None:
            continue
        if m.group(2).strip() in ("", "{"):
            group = m.group(1)
        else:
            names.append(group + "." + m.group(1) if group else m.group(1))
    return names


def mdoc_args(line):
    """Arguments of an mdoc line, as mandoc splits them (quotes honoured)."""
    args, i, n = [], 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        if i >= n:
            break
        if line[i] == '"':
            j, buf = i + 1, []
            while j < n:
                if line[j] == '"':
                    if j + 1 < n and line[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    break
                buf.append(line[j])
                j += 1
            args.append("".join(buf))
            i = j + 1
        else:
            j = i
            while j < n and line[j] != " ":
                j += 2 if line[j] == "\\" else 1
            args.append(line[i:j])
            i = j
    return args


def roff_text(s):
    s = s.replace("\\(dq", '"').replace("\\&", "").replace("\\e", "\\")
    return s.replace("\\-", "-")


def is_macro(tok):
    return re.fullmatch(r"[A-Z][a-z][a-z]?|%[A-Z]", tok) is not None


def man_key_items(text):
    """{key: {"type":, "default":, "restart": bool}} from `.It Cm KEY Pq
    TYPE , default Li VALUE [, restart only]` lines."""
    items = {}
    for line in text.splitlines():
        if not line.startswith(".It "):
            continue
        a = mdoc_args(line[4:])
        if len(a) < 2 or a[0] != "Cm" or "Pq" not in a:
            continue
        p = a[a.index("Pq") + 1:]
        entry = {"type": p[0] if p else None, "default": None,
                 "restart": "restart" in p}
        if "default" in p:
            k = p.index("default") + 1
            if k < len(p) and p[k] == "Li":
                k += 1
            if k < len(p):
                entry["default"] = roff_text(p[k])
        items[a[1]] = entry
    return items


def man_commands(text):
    """Words given to the Cm macro anywhere in an mdoc page."""
    words = set()
    for line in text.splitlines():
        if not line.startswith("."):
            continue
        a = mdoc_args(line[1:])
        for k, tok in enumerate(a):
            if tok != "Cm":
                continue
            for t in a[k + 1:]:
                if is_macro(t):
                    break
                words.add(roff_text(t))
    return words


# ---------------------------------------------------------------- code lists

def x_list(rel, macro):
    """The (NAME, "word") pairs of an X-macro list."""
    text = re.sub(r"\\\n", " ", strip_comments(source(rel)))
    m = re.search(r"^[ \t]*#[ \t]*define[ \t]+%s\(X\)(.*)$" % macro, text, re.M)
    if m is None:
        raise harness.HardError("%s: no #define %s(X)" % (rel, macro))
    body = m.group(1)
    pairs = re.findall(r'\bX\(\s*(\w+)\s*,\s*"([^"]+)"', body)
    if not pairs or len(pairs) != len(re.findall(r"\bX\(", body)):
        raise harness.HardError("%s: %s rows not understood" % (rel, macro))
    return pairs


def offered_commands():
    """Verbs probectl offers as commands: its commands[] table."""
    text = strip_comments(source("src/probectl/probectl.c"))
    m = re.search(r"\bcommands\s*\[[^\]]*\]\s*=\s*\{", text)
    if m is None:
        raise harness.HardError("probectl.c: no commands[] table")
    start = m.end() - 1
    body = text[start + 1:matching(text, start)]
    rows = re.findall(r"\[\s*CTL_(\w+)\s*\]\s*=\s*\{\s*(true|false)\b", body)
    if not rows:
        raise harness.HardError("probectl.c: commands[] rows not understood")
    return {name for name, offered in rows if offered == "true"}


def call_sites(text, fn):
    """Argument lists (split) of every call of fn in text."""
    for m in re.finditer(r"\b%s\s*\(" % re.escape(fn), text):
        open_at = m.end() - 1
        try:
            yield split_top(text[open_at + 1:matching(text, open_at)])
        except ValueError:
            continue


def functions(text):
    """(name, [(param type, param name)], body) of every function
    definition (BSD style: the name starts its line)."""
    for m in re.finditer(r"^(\w+)\s*\(([^;{}]*?)\)\s*\{", text, re.M | re.S):
        params = []
        for p in split_top(m.group(2)):
            pm = re.fullmatch(r"(.*?)(\w+)\s*", p, re.S)
            params.append((pm.group(1).strip(), pm.group(2)) if pm else (p, ""))
        open_at = m.end() - 1
        try:
            yield m.group(1), params, text[open_at:matching(text, open_at) + 1]
        except ValueError:
            continue


def string_param(params, name):
    """Index of the `const char *name` parameter, or None."""
    for i, (t, n) in enumerate(params):
        if n == name and re.search(r"\bchar\s*\*$", t):
            return i
    return None


RESPONSE_LINE = re.compile(r'"error ([a-z0-9_]+)(?: text=\\".*?)?\\n"')


def error_reasons(files):
    """Error words the given files can put on the wire (see the header)."""
    texts = [strip_comments(source(f)) for f in files]
    # Sink: function name -> index of its reason argument.
    sinks = {}
    for args in re.findall(r"\bctl_fmt_error\s*\(([^;{}]*)\)\s*;",
                           strip_comments(source("include/codec.h"))):
        names = [re.findall(r"\w+", p)[-1] for p in split_top(args)]
        if "reason" in names:
            sinks["ctl_fmt_error"] = names.index("reason")
    if not sinks:
        raise harness.HardError("include/codec.h: no ctl_fmt_error(..., reason, ...)")
    funcs = [f for t in texts for f in functions(t)]
    changed = True
    while changed:
        changed = False
        for name, params, body in funcs:
            k = string_param(params, "reason")
            if name in sinks or k is None:
                continue
            stores = re.search(r"(?:->|\.)\s*reason\s*=\s*reason\s*;", body)
            passes = any(len(a) > i and a[i] == "reason"
                         for s, i in sinks.items() for a in call_sites(body, s))
            if stores or passes:
                sinks[name] = k
                changed = True
    found = {}
    for f, t in zip(files, texts):
        for s, i in sinks.items():
            for a in call_sites(t, s):
                v = c_string(a[i]) if len(a) > i else None
                if v is not None:
                    found.setdefault(v, f)
        for v in re.findall(r'(?:->|\.)\s*reason\s*=\s*("[^"]*")', t):
            found.setdefault(c_string(v), f)
        for v in RESPONSE_LINE.findall(t):
            found.setdefault(v, f)
    return found, sorted(sinks)


# ---------------------------------------------------------------- cases

@suite.case
def config_keys_documented(c):
    try:
        keys = config_keys()
    except ValueError as e:
        c.require(False, "the key table in src/probed/config.c parses", str(e))
    names = [k[0] for k in keys]
    lost = [k for k in FIXED_KEYS if k not in names]
    c.require(not lost, "the key table parse finds %d keys, the fixed names "
              "among them" % len(keys), "not found: %s" % ", ".join(lost))
    c.check(len(set(names)) == len(names), "no key is in the table twice")

    probed = os.environ.get("PROBED")
    if probed:
        groups = {}
        for name, _, default, _ in keys:
            g, _, leaf = name.rpartition(".")
            groups.setdefault(g, []).append("%s = %s;" % (leaf, default))
        text = "".join(s + "\n" for s in groups.pop(""))
        text += "".join("%s: {\n%s};\n" % (g, "".join("\t%s\n" % s for s in v))
                        for g, v in groups.items())
        conf = c.write_config("defaults.conf", text)
        rc, out, err = c.run([probed, "-t", "-c", conf])
        c.check(rc == 0, "probed -t accepts every parsed key set to its parsed "
                "default", "exit %d\n%s%s\nfile:\n%s" % (rc, out, err, text))
    else:
        c.skip("probed -t accepts every parsed key", "PROBED is not set")

    sample = doc(c, "etc/probed.conf")
    if sample is not None:
        set_ = sample_settings(sample)
        check_all(c, names, lambda k: k in set_, "config key (as a setting)",
                  "etc/probed.conf")
        check_none_extra(c, set_, names, "config key", "etc/probed.conf")

    md = doc(c, "doc/configuration.md")
    if md is not None:
        rows = re.findall(r"^\|\s*`([a-z_][\w.]*)`\s*\|\s*(\w+)\s*\|", md, re.M)
        in_md = [name for name, t in rows if t in {k[1] for k in keys}]
        check_all(c, names, lambda k: k in in_md, "config key (as a table row)",
                  "doc/configuration.md")
        check_none_extra(c, in_md, names, "config key", "doc/configuration.md")

    man = doc(c, "doc/probed.conf.5")
    if man is not None:
        items = man_key_items(man)
        check_all(c, names, lambda k: k in items, "config key (as .It Cm KEY)",
                  "doc/probed.conf.5")
        check_none_extra(c, items, names, "config key", "doc/probed.conf.5")
        wrong = []
        for name, word, default, reloadable in keys:
            it = items.get(name)
            if it is None:
                continue
            if it["type"] != word:
                wrong.append("%s: type %s, table says %s" % (name, it["type"], word))
            if it["default"] != default:
                wrong.append("%s: default %s, table says %s" %
                             (name, it["default"], default))
            if it["restart"] == reloadable:
                wrong.append("%s: %s, table says %s" % (
                    name, "restart only" if it["restart"] else "reloadable",
                    "reloadable" if reloadable else "restart only"))
        c.check(not wrong, "doc/probed.conf.5 gives each key's type, default "
                "and reload behaviour as the table does%s" %
                (" (%s)" % listing(wrong, 3) if wrong else ""),
                "\n".join(wrong) if wrong else None)


@suite.case
def verbs_documented(c):
    verbs = [w for _, w in x_list("include/codec.h", "CTL_VERB_LIST")]
    c.note("verbs in CTL_VERB_LIST: %s" % " ".join(verbs))

    proto = doc(c, "doc/protocol.md")
    if proto is not None:
        check_all(c, verbs, lambda v: re.search(r"`%s[` ]" % re.escape(v), proto),
                  "protocol verb", "doc/protocol.md")

    offered = offered_commands()
    unknown = sorted(offered - {n for n, _ in x_list("include/codec.h",
                                                     "CTL_VERB_LIST")})
    c.check(not unknown, "probectl offers only verbs of CTL_VERB_LIST",
            ", ".join(unknown) if unknown else None)
    names = dict(x_list("include/codec.h", "CTL_VERB_LIST"))
    client = [names[n].lower() for n in names if n in offered]
    for n in names:
        if n not in offered:
            c.skip("probectl --help and doc/probectl.1 list %s" % names[n],
                   "probectl does not offer %s (commands[] in "
                   "src/probectl/probectl.c)" % names[n])

    rc, out, err = c.run([harness.binary("PROBECTL"), "--help"])
    c.check(rc == 0, "probectl --help exits 0", "exit %d\n%s" % (rc, err))
    listed = {m.group(1).lower() for m in
              re.finditer(r"^\s+([A-Za-z]+)\b", out, re.M)}
    check_all(c, client, lambda v: v in listed, "probectl command (as a line "
              "of the usage text)", "probectl --help")

    man = doc(c, "doc/probectl.1")
    if man is not None:
        cm = man_commands(man)
        check_all(c, client, lambda v: v in cm, "probectl command (as Cm)",
                  "doc/probectl.1")


@suite.case
def reasons_documented(c):
    reasons = [w for _, w in x_list("include/vocab.h", "REASON_LIST")]
    c.note("reasons in REASON_LIST: %s" % " ".join(reasons))
    for rel in ("doc/protocol.md", "doc/verdicts.md"):
        text = doc(c, rel)
        if text is not None:
            check_all(c, reasons, lambda w: md_mentions(text, w, ("reason=",)),
                      "reason of include/vocab.h", rel)


@suite.case
def error_reasons_documented(c):
    files = ["src/lib/codec.c"] + sorted(
        "src/probed/" + f for f in os.listdir(path("src/probed"))
        if f.endswith(".c") and f != "classify.c")
    found, sinks = error_reasons(files)
    c.note("error formatters: %s" % ", ".join(sinks))
    c.note("error reasons: %s" % ", ".join(
        "%s (%s)" % (w, f) for w, f in sorted(found.items())))
    lost = [w for w in KNOWN_ERRORS if w not in found]
    c.check(not lost, "the source scan finds the version 1 error reasons",
            "not found: %s" % ", ".join(lost) if lost else None)
    proto = doc(c, "doc/protocol.md")
    if proto is not None:
        check_all(c, sorted(found), lambda w: md_mentions(proto, w, ("error ",)),
                  "error reason the daemon sends", "doc/protocol.md")

    classify = "src/probed/classify.c"
    if os.path.exists(path(classify)):
        words = sorted(set(RESPONSE_LINE.findall(strip_comments(source(classify)))))
        c.note("probed --classify error words: %s" % ", ".join(words))
        man = doc(c, "doc/probed.8")
        if man is not None and words:
            check_all(c, words, lambda w: re.search(
                r"(?<![\w])%s(?![\w])" % re.escape(w), man),
                "error word of probed --classify", "doc/probed.8")


@suite.case
def policy_options_documented(c):
    """Every option `probed-policy --help` lists is in probed-policy(8),
    short and long form."""
    exe = os.environ.get("PROBED_POLICY")
    if not exe:
        c.skip("probed-policy options are in probed-policy(8)",
               "PROBED_POLICY is not set")
        return
    rc, out, err = c.run([exe, "--help"])
    c.check(rc == 0, "probed-policy --help exits 0", "exit %d\n%s" % (rc, err))
    opts = re.findall(r"^\s+-(\w), --([\w-]+)", out, re.M)
    c.require(len(opts) >= 8, "probed-policy --help lists its options (%d)" % len(opts),
              out)
    man = doc(c, "doc/probed-policy.8")
    if man is None:
        return
    missing = []
    for short, long_ in opts:
        # mdoc writes --log-file as \-log\-file
        written = "\\-" + long_.replace("-", "\\-")
        if not re.search(r"^\.It Fl %s\b.*\bFl %s(?![\w\\])" % (
                re.escape(short), re.escape(written)), man, re.M):
            missing.append("-%s/--%s" % (short, long_))
    c.check(not missing, "doc/probed-policy.8 documents every option of "
            "--help, short and long%s" % (" (missing: %s)" % ", ".join(missing)
                                          if missing else ""))


@suite.case
def man_pages_lint(c):
    pages = sorted(f for f in os.listdir(path("doc"))
                   if re.search(r"\.[1-9]$", f))
    c.require(pages, "doc/ holds man pages")
    mandoc = shutil.which("mandoc")
    for page in pages:
        rel = "doc/" + page
        if mandoc is None:
            c.skip("%s passes mandoc -T lint -W warning" % rel,
                   "mandoc is not installed")
            continue
        p = subprocess.run([mandoc, "-T", "lint", "-W", "warning", path(rel)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=harness.T(30))
        text = p.stdout.decode("utf-8", "replace").strip()
        c.check(p.returncode == 0 and not text,
                "%s passes mandoc -T lint -W warning%s" % (
                    rel, " (%s)" % text.splitlines()[0] if text else ""),
                "exit %d\n%s" % (p.returncode, text))


if __name__ == "__main__":
    suite.main()
