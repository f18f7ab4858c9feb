"""difyload workloads for locustfile.py: read, check, resolve and ship a workload file.

A workload (TOML or JSON, by extension) names the Dify apps under test, the knowledge bases,
the Locust user classes that drive them and optional SLOs. This module checks it with the same
rules as difyload's Go package workload (unknown fields, types, datasets, missing key
variables), builds the Locust user classes from it, and builds the message the master sends
to every worker at each test start ("difyload_workload"): the same tables with the keys
resolved and the datasets inlined, so workers need no copy of the file.

Only the standard library is used here (tomllib, json, csv), so a stock Locust master reads
the file with no extra package. Errors name the file, the place (a key path) and the fix, and
never contain a key.
"""

import copy
import csv
import io
import json
import os
import random
import re

try:
    import tomllib
except ImportError:  # Python < 3.11: JSON workloads only
    tomllib = None

MESSAGE_TYPE = "difyload_workload"
DEFAULT_SOURCE = "built-in default"
APP_TYPES = ("chat", "agent", "chatflow", "completion", "workflow")
WAIT_KINDS = ("between", "constant", "constant_pacing", "constant_throughput", "poisson")
ENDPOINTS = {"chat": "/v1/chat-messages", "agent": "/v1/chat-messages", "chatflow": "/v1/chat-messages",
             "completion": "/v1/completion-messages", "workflow": "/v1/workflows/run"}

# The built-in workload: byte-identical to workload/default.toml and examples/seed.toml
# (a Go test compares them).
DEFAULT_TOML = """# difyload's built-in workload: the seed's three scenarios with the seed's payloads.
# The keys come from the master's options (--dify-simple-app-key, … which default to the
# mock's keys), so a stock run needs no file at all. Copy this file to start your own.
version = 1

[[apps]]
name = "SimpleChatFlow"
type = "chatflow"
key_option = "dify_simple_app_key"
inputs = {}
queries = ["请简单介绍一下你自己"]

[[apps]]
name = "ComplexChatFlow"
type = "chatflow"
key_option = "dify_complex_app_key"
inputs = { dept = "IT" }
queries = ["我需要申请一台新电脑,请指导我完成流程"]
timeout = 120

[[knowledge_bases]]
name = "FileRetrieval"
dataset_id_option = "dify_dataset_id"
key_option = "dify_dataset_key"
queries = ["流程审批是什么?如果有图片,请一起返回"]
retrieval_model = { search_method = "hybrid_search", reranking_enable = false, top_k = 3, score_threshold_enabled = false }
timeout = 30

[[users]]
name = "ChatUser"
wait_time = { between = [1, 3] }
tasks = [
  { app = "SimpleChatFlow", name = "simple_chat_flow" },
  { app = "ComplexChatFlow", name = "complex_chat_flow" },
]

[[users]]
name = "RetrieveUser"
wait_time = { between = [2, 5] }
tasks = [{ app = "FileRetrieval", name = "file_retrieval" }]
"""

# The datasets travel inline in the workload message (the Go worker accepts frames up to
# 1 GiB); 10^6 rows of a typical question file are about 100 MiB.
MAX_DATASET_BYTES = 512 << 20

_CLASS_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_RE = _CLASS_RE


class WorkloadError(Exception):
    """One or more problems; str() lists them, one per line."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__("\n".join(problems))


def _closest(s, allowed):
    def dist(a, b):
        prev = list(range(len(b) + 1))
        for i in range(1, len(a) + 1):
            cur = [i] + [0] * len(b)
            for j in range(1, len(b) + 1):
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            prev = cur
        return prev[len(b)]
    best, best_d = "", 4
    for a in allowed:
        d = dist(s, a)
        if d < best_d:
            best, best_d = a, d
    return best


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Dataset:
    """A JSONL or CSV query file: raw rows, decoded when picked."""

    def __init__(self, name, fmt, data):
        self.name, self.format, self.data = name, fmt, data
        self.rows = []  # JSONL: bytes per row; CSV: list of fields
        self.header = []
        self.qcol = -1

    def __len__(self):
        return len(self.rows)

    def row(self, i):
        """(query, inputs or None) of row i."""
        r = self.rows[i]
        if self.format == "csv":
            inputs = {h: r[c] for c, h in enumerate(self.header) if c != self.qcol and c < len(r)}
            return r[self.qcol], inputs or None
        m = json.loads(r)
        q = m.pop("query")
        return q, m or None


def format_of(name):
    n = name.lower()
    if n.endswith(".jsonl") or n.endswith(".ndjson"):
        return "jsonl"
    if n.endswith(".csv"):
        return "csv"
    return ""


def parse_dataset(file, place, name, fmt, data):
    def bad(line, problem, fix):
        return WorkloadError([f"workload {file}: {place} ({name} line {line}): {problem} (fix: {fix})"])

    ds = Dataset(name, fmt, data)
    if fmt == "jsonl":
        for line, raw in enumerate(data.split(b"\n"), 1):
            raw = raw.strip()
            if not raw:
                continue
            try:
                m = json.loads(raw)
            except ValueError as e:
                raise bad(line, f"is not a JSON object: {e}", 'write one JSON object per line, e.g. {"query": "…", "dept": "IT"}')
            if not isinstance(m, dict):
                raise bad(line, "is not a JSON object", 'write one JSON object per line, e.g. {"query": "…"}')
            q = m.get("query")
            if not isinstance(q, str) or not q.strip():
                raise bad(line, "row has no query", 'give every row a non-empty "query" field')
            ds.rows.append(raw)
    elif fmt == "csv":
        text = data.decode("utf-8-sig")
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            ds.header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise bad(1, "no header row", "start the file with a header such as query,dept")
        if "query" not in ds.header:
            raise bad(1, "the header has no query column", "name one column query")
        ds.qcol = ds.header.index("query")
        for rec in reader:
            if not rec:
                continue
            if len(rec) != len(ds.header):
                raise bad(reader.line_num, f"has {len(rec)} fields, the header has {len(ds.header)}",
                          "fix the CSV syntax (quote fields holding commas or newlines)")
            if not rec[ds.qcol].strip():
                raise bad(reader.line_num, "row has no query", "fill the query column of every row")
            ds.rows.append(rec)
    else:
        raise WorkloadError([f"workload {file}: {place}: dataset {name}: unknown format {fmt!r} (fix: name the file .jsonl or .csv)"])
    if not ds.rows:
        raise WorkloadError([f"workload {file}: {place}: dataset {name} has no rows (fix: add rows with a query)"])
    return ds


class _Checker:
    """Walks the decoded tree like workload/decode.go and collects problems."""

    def __init__(self, file, from_master=False, open_dataset=None):
        self.file, self.from_master, self.open_dataset = file, from_master, open_dataset
        self.problems = []

    def add(self, place, problem, fix=""):
        if len(self.problems) < 20:
            msg = f"workload {self.file}: {place + ': ' if place else ''}{problem}"
            self.problems.append(msg + (f" (fix: {fix})" if fix else ""))

    def table(self, place, v, allowed):
        if not isinstance(v, dict):
            self.add(place, f"is {_kind(v)}, want a table", "write it as a table")
            return None
        for k in sorted(v):
            if k not in allowed:
                c = _closest(k, allowed)
                fix = (f"did you mean {c!r}? " if c else "remove it; ") + "allowed here: " + ", ".join(allowed)
                self.add(_at(place, k), "unknown field", fix)
        return v

    def string(self, t, place, key, required=False, fix=""):
        v = t.get(key)
        if v is None:
            if required:
                self.add(_at(place, key), "is missing", fix)
            return ""
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        if not isinstance(v, str):
            self.add(_at(place, key), f"is {_kind(v)}, want a string", fix)
            return ""
        if required and not v.strip():
            self.add(_at(place, key), "is empty", fix)
        return v

    def seconds(self, place, v):
        if isinstance(v, str):
            self.add(place, f"{v!r} is not a number of seconds", "write seconds as a number, e.g. 30")
            return 0.0
        if not _is_num(v) or v < 0 or v > 1e7:
            self.add(place, f"is {_kind(v)}, want seconds ≥ 0", "write seconds as a number, e.g. 30")
            return 0.0
        return float(v)

    def nonneg_int(self, t, place, key, default):
        v = t.get(key)
        if v is None:
            return default
        if not _is_num(v) or v < 0 or v != int(v) or v > 1e9:
            self.add(_at(place, key), f"is {v!r}, want a whole number ≥ 0", "write e.g. 1")
            return default
        return int(v)

    def check(self, root):
        t = self.table("", root, ["version", "apps", "knowledge_bases", "users", "slo"])
        if t is None:
            return
        if "version" in t and t["version"] != 1:
            self.add("version", f"is {t['version']!r}, this difyload reads version 1", "write version = 1 or leave it out")
        names = {}
        for list_key, fn in (("apps", self.app), ("knowledge_bases", self.kb)):
            items = t.get(list_key)
            if items is None:
                continue
            if not isinstance(items, list):
                self.add(list_key, f"is {_kind(items)}, want a list", "write a list of tables")
                continue
            for i, item in enumerate(items):
                place = f"{list_key}[{i}]"
                name = fn(place, item)
                if name:
                    if name in names:
                        self.add(place + ".name", f"{name!r} is already the name of {names[name]}",
                                 "give every app and knowledge base its own name")
                    else:
                        names[name] = place
        users = t.get("users")
        if not isinstance(users, list) or not users:
            self.add("users", "no user classes", "add at least one [[users]] table with a name and tasks")
            users = []
        classes = {}
        for i, u in enumerate(users):
            place = f"users[{i}]"
            name = self.user(place, u, names)
            if name:
                if name in classes:
                    self.add(place + ".name", f"{name!r} is already the name of {classes[name]}",
                             "give every user class its own name")
                classes[name] = place
        if "slo" in t:
            s = self.table("slo", t["slo"], ["ttft_ms", "tpot_ms", "e2e_ms"])
            for k, v in (s or {}).items():
                if k in ("ttft_ms", "tpot_ms", "e2e_ms") and (not _is_num(v) or v < 0):
                    self.add(_at("slo", k), "is not milliseconds ≥ 0", "write milliseconds ≥ 0 (0 = no objective)")

    def secret(self, t, place, prefix):
        env = self.string(t, place, prefix + "_env", fix="write the name of an environment variable")
        opt = self.string(t, place, prefix + "_option", fix="write a master option name such as dify_simple_app_key")
        if prefix == "key" and "key" in t and not self.from_master:
            self.add(_at(place, "key"), "keys are never written in a workload file",
                     "put the key in an environment variable and name it with key_env")
        if env and not _ENV_RE.match(env):
            self.add(_at(place, prefix + "_env"), f"{env!r} is not an environment variable name",
                     "use letters, digits and _ (e.g. MY_APP_KEY)")
        if env and opt:
            self.add(_at(place, prefix + "_env"), f"{prefix}_env and {prefix}_option are both set", "keep one of them")
        if not env and not opt and not (self.from_master and t.get(prefix)):
            if prefix == "key":
                self.add(_at(place, "key_env"), "is missing", 'name the environment variable that holds it: key_env = "MY_VAR"')

    def queries(self, t, place, required):
        if "queries" in t:
            q = t["queries"]
            if not isinstance(q, list):
                self.add(_at(place, "queries"), f"is {_kind(q)}, want a list", "write a list in [ ]")
            else:
                if not q:
                    self.add(_at(place, "queries"), "is an empty list", "add at least one query or remove the field")
                for i, s in enumerate(q):
                    if not isinstance(s, str) or not s.strip():
                        self.add(f"{_at(place, 'queries')}[{i}]", "is not a non-empty string", "write each query as a string")
        if "dataset" in t:
            if t.get("queries"):
                self.add(_at(place, "dataset"), "queries and dataset are both set", "keep one of them")
            self.dataset(_at(place, "dataset"), t["dataset"])
        pick = t.get("pick", "sequential")
        if pick not in ("sequential", "random"):
            self.add(_at(place, "pick"), f"unknown pick {pick!r}", 'write "sequential" or "random"')
        if required and "queries" not in t and "dataset" not in t:
            self.add(_at(place, "queries"), "no queries", 'add queries = ["…"] or dataset = "questions.jsonl"')

    def dataset(self, place, v):
        if isinstance(v, str):
            if self.from_master or self.open_dataset is None:
                self.add(place, "a dataset file name in the master's message", "upgrade the master's locustfile.py")
                return
            try:
                self.open_dataset(place, v)
            except WorkloadError as e:
                self.problems.extend(e.problems)
            return
        if isinstance(v, dict) and self.from_master:
            return
        self.add(place, f"is {_kind(v)}", 'write the dataset\'s file name, e.g. dataset = "questions.jsonl"')

    def app(self, place, a):
        allowed = ["name", "type", "key_env", "key_option", "inputs", "queries", "dataset", "pick", "query_input",
                   "files", "timeout", "conversation"] + (["key"] if self.from_master else [])
        t = self.table(place, a, allowed)
        if t is None:
            return ""
        name = self.string(t, place, "name", True, 'give the app a name, e.g. name = "faq-bot"')
        typ = self.string(t, place, "type", True, "set type to one of " + ", ".join(APP_TYPES))
        if typ and typ not in APP_TYPES:
            fix = "use one of " + ", ".join(APP_TYPES)
            c = _closest(typ, APP_TYPES)
            if c:
                fix = f"did you mean {c!r}? " + fix
            if typ == "advanced-chat":
                fix = 'an advanced-chat app is type "chatflow"'
            elif typ == "agent-chat":
                fix = 'an agent-chat app is type "agent"'
            self.add(_at(place, "type"), f"unknown app type {typ!r}", fix)
        self.secret(t, place, "key")
        if "inputs" in t and not isinstance(t["inputs"], dict):
            self.add(_at(place, "inputs"), f"is {_kind(t['inputs'])}, want a table", 'write a table, e.g. { dept = "IT" }')
        self.queries(t, place, typ != "workflow")
        qi = self.string(t, place, "query_input", fix="write the input variable's name")
        if qi and typ not in ("workflow", "completion"):
            self.add(_at(place, "query_input"), "is only for completion and workflow apps",
                     f"remove it: a {typ} app gets the query as its query field")
        files = t.get("files")
        if files is not None:
            if not isinstance(files, list):
                self.add(_at(place, "files"), f"is {_kind(files)}, want a list", "write a list in [ ]")
            else:
                for i, f in enumerate(files):
                    if not isinstance(f, dict):
                        self.add(f"{place}.files[{i}]", "is not a table",
                                 'write { type = "image", transfer_method = "remote_url", url = "https://…" }')
        if "timeout" in t:
            self.seconds(_at(place, "timeout"), t["timeout"])
        if "conversation" in t:
            if typ in ("completion", "workflow"):
                self.add(_at(place, "conversation"), f"a {typ} app has no conversations",
                         "remove it; only chat, agent and chatflow apps keep a conversation_id")
            c = self.table(_at(place, "conversation"), t["conversation"], ["turns", "think_time"])
            if c is not None:
                cp = _at(place, "conversation")
                if "turns" in c:
                    self.int_range(_at(cp, "turns"), c["turns"])
                if "think_time" in c:
                    self.dur_range(_at(cp, "think_time"), c["think_time"])
        return name

    def int_range(self, place, v):
        def one(x):
            return _is_num(x) and 1 <= x <= 1000 and x == int(x)
        ok = (isinstance(v, list) and len(v) == 2 and one(v[0]) and one(v[1]) and v[1] >= v[0]) or one(v)
        if not ok:
            self.add(place, f"is {_kind(v)}", "write a whole number ≥ 1 (e.g. 3) or a range [min, max]")

    def dur_range(self, place, v):
        if isinstance(v, list):
            if len(v) != 2:
                self.add(place, "is a list but not [min, max]", "write seconds (e.g. 2) or a range [1, 3]")
                return
            lo, hi = self.seconds(place + "[0]", v[0]), self.seconds(place + "[1]", v[1])
            if hi < lo:
                self.add(place, "max is below min", "write [min, max]")
            return
        self.seconds(place, v)

    def kb(self, place, k):
        allowed = ["name", "dataset_id", "dataset_id_env", "dataset_id_option", "key_env", "key_option", "queries",
                   "dataset", "pick", "retrieval_model", "timeout"] + (["key"] if self.from_master else [])
        t = self.table(place, k, allowed)
        if t is None:
            return ""
        name = self.string(t, place, "name", True, 'give the knowledge base a name, e.g. name = "handbook"')
        if not any(t.get(x) for x in ("dataset_id", "dataset_id_env", "dataset_id_option")):
            self.add(_at(place, "dataset_id"), "is missing", 'write dataset_id = "<the knowledge base id>" (or dataset_id_env)')
        self.secret(t, place, "key")
        self.queries(t, place, True)
        if "retrieval_model" in t and not isinstance(t["retrieval_model"], dict):
            self.add(_at(place, "retrieval_model"), f"is {_kind(t['retrieval_model'])}, want a table", "write a table")
        if "timeout" in t:
            self.seconds(_at(place, "timeout"), t["timeout"])
        return name

    def user(self, place, u, targets):
        t = self.table(place, u, ["name", "weight", "fixed_count", "host", "wait_time", "tasks"])
        if t is None:
            return ""
        name = self.string(t, place, "name", True, 'give the class a name, e.g. name = "ChatUser"')
        if name and not _CLASS_RE.match(name):
            self.add(_at(place, "name"), f"{name!r} is not a Python class name",
                     "use letters, digits and _, not starting with a digit (e.g. FaqUser)")
        self.nonneg_int(t, place, "weight", 1)
        self.nonneg_int(t, place, "fixed_count", 0)
        self.string(t, place, "host", fix="write a base URL such as https://dify.example.com")
        if "wait_time" in t:
            self.wait(_at(place, "wait_time"), t["wait_time"])
        tasks = t.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            self.add(_at(place, "tasks"), "no tasks", 'add tasks = [{ app = "<an app or knowledge base name>" }]')
            tasks = []
        seen = set()
        for i, task in enumerate(tasks):
            tp = f"{place}.tasks[{i}]"
            tt = self.table(tp, task, ["app", "name", "weight", "tags"])
            if tt is None:
                continue
            target = self.string(tt, tp, "app", True, "name an app or knowledge base of this workload")
            if target and target not in targets:
                self.add(_at(tp, "app"), f"no app or knowledge base is called {target!r}",
                         "use one of: " + ", ".join(sorted(targets)))
            tname = self.string(tt, tp, "name", fix="write a task name") or target
            if tname in seen:
                self.add(tp, f"a second task called {tname!r}", 'give the task its own name = "…"')
            seen.add(tname)
            self.nonneg_int(tt, tp, "weight", 1)
            tags = tt.get("tags")
            if tags is not None:
                if not isinstance(tags, list):
                    self.add(_at(tp, "tags"), f"is {_kind(tags)}, want a list", "write tags as a list of strings")
                else:
                    for j, tg in enumerate(tags):
                        if not isinstance(tg, str) or not tg:
                            self.add(f"{tp}.tags[{j}]", "is not a non-empty string", "write tags as strings")
        return name

    def wait(self, place, v):
        fix = ("write one of { between = [1, 3] }, { constant = 1 }, { constant_pacing = 10 }, "
               "{ constant_throughput = 0.5 }, { poisson = 2 }")
        if not isinstance(v, dict) or len(v) != 1:
            self.add(place, "is not a table with one wait function", fix)
            return
        (k, x), = v.items()
        p = _at(place, k)
        if k == "between":
            if not isinstance(x, list):
                self.add(p, "is not [min, max]", fix)
            else:
                self.dur_range(p, x)
        elif k in ("constant", "constant_pacing"):
            self.seconds(p, x)
        elif k in ("constant_throughput", "poisson"):
            if not _is_num(x) or not x > 0:
                self.add(p, "is not a positive rate", "write task runs per second per user, e.g. 0.5")
        else:
            c = _closest(k, WAIT_KINDS)
            self.add(p, f"unknown wait function {k!r}", (f"did you mean {c!r}? " if c else "") + fix)


def _at(place, key):
    return f"{place}.{key}" if place else key


def _kind(v):
    if v is None:
        return "empty"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (str, bytes)):
        return "a string"
    if _is_num(v):
        return "a number"
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "a list"
    return "a " + type(v).__name__


class Workload:
    """A checked workload: the tree as written plus the loaded datasets."""

    def __init__(self, source, tree, datasets):
        self.source = source
        self.tree = tree
        self.datasets = datasets  # place of the dataset field -> Dataset

    def targets(self):
        """name -> (kind, table, place) for every app and knowledge base."""
        out = {}
        for i, a in enumerate(self.tree.get("apps") or []):
            out[a["name"]] = (a["type"], a, f"apps[{i}]")
        for i, k in enumerate(self.tree.get("knowledge_bases") or []):
            out[k["name"]] = ("retrieve", k, f"knowledge_bases[{i}]")
        return out

    def dataset(self, place):
        return self.datasets.get(place + ".dataset")

    def post_name(self, name, split):
        """The POST row of a target: with split rows, an endpoint that several apps (or
        knowledge bases) share gets the target's name too ("/v1/chat-messages helpdesk")."""
        kind, _t, _place = self.targets()[name]
        endpoint = "/v1/datasets/[id]/retrieve" if kind == "retrieve" else ENDPOINTS[kind]
        if not split:
            return endpoint
        shared = sum(1 for k, _t2, _p in self.targets().values()
                     if ("/v1/datasets/[id]/retrieve" if k == "retrieve" else ENDPOINTS[k]) == endpoint)
        return f"{endpoint} {name}" if shared > 1 else endpoint


def _syntax(name, src):
    if name.lower().endswith(".json"):
        try:
            return json.loads(src.decode("utf-8"))
        except ValueError as e:
            line = getattr(e, "lineno", 0)
            raise WorkloadError([f"workload {name}:{line}: JSON syntax: {getattr(e, 'msg', e)} "
                                 "(fix: correct the JSON (a TOML file must end in .toml))"])
    if tomllib is None:
        raise WorkloadError([f"workload {name}: TOML needs Python 3.11+ (fix: write the workload as JSON)"])
    try:
        return tomllib.loads(src.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise WorkloadError([f"workload {name}: TOML syntax: {e} (fix: correct the TOML (a JSON file must end in .json))"])


def parse(name, src, base_dir=None):
    """Checks a workload source; datasets are read relative to base_dir (None: refused)."""
    tree = _syntax(name, src)
    datasets = {}

    def open_dataset(place, ds_name):
        fmt = format_of(ds_name)
        if not fmt:
            raise WorkloadError([f"workload {name}: {place}: dataset {ds_name!r} is neither .jsonl nor .csv "
                                 "(fix: name the file .jsonl (one JSON object per line) or .csv (a header with a query column))"])
        path = ds_name if os.path.isabs(ds_name) else os.path.join(base_dir, ds_name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise WorkloadError([f"workload {name}: {place}: cannot read the dataset: {e} "
                                 "(fix: paths are relative to the workload file)"])
        datasets[place] = parse_dataset(name, place, ds_name, fmt, data)

    c = _Checker(name, open_dataset=open_dataset if base_dir is not None else None)
    c.check(tree)
    total = sum(len(ds.data) for ds in datasets.values())
    if total > MAX_DATASET_BYTES:
        c.add("", f"the datasets hold {total >> 20} MiB; every worker gets them in one message of at most "
                  f"{MAX_DATASET_BYTES >> 20} MiB", "sample the datasets or split the test")
    if c.problems:
        raise WorkloadError(c.problems)
    return Workload(name, tree, datasets)


def load(path):
    try:
        with open(path, "rb") as f:
            src = f.read()
    except OSError as e:
        raise WorkloadError([f"workload {path}: {e} (fix: check the path given to --dify-workload)"])
    return parse(path, src, os.path.dirname(os.path.abspath(path)))


def default():
    return parse(DEFAULT_SOURCE + ".toml", DEFAULT_TOML.encode("utf-8"))


def check_env(w, environ):
    """The missing key variables of w (the master refuses to start with any)."""
    problems = []
    for name, (_kind_, t, place) in sorted(w.targets().items()):
        for prefix in ("key", "dataset_id"):
            env = t.get(prefix + "_env")
            if env and not environ.get(env):
                problems.append(f"workload {w.source}: {place}.{prefix}_env: environment variable {env} is not set "
                                f"(fix: export {env}=… before starting (the value is never logged))")
    if problems:
        raise WorkloadError(problems)


def secret(t, prefix, environ, option):
    """The value of key / dataset_id: from the environment, an option, or as written
    (dataset_id in a file; the resolved key in the master's message)."""
    if t.get(prefix + "_env"):
        return environ.get(t[prefix + "_env"], "")
    if t.get(prefix + "_option"):
        return option(t[prefix + "_option"]) or ""
    v = t.get(prefix)
    return v if isinstance(v, str) else ""


def message(w, environ, option):
    """The master's message: the tree with keys and dataset ids resolved, datasets inlined."""
    tree = copy.deepcopy(w.tree)
    for list_key in ("apps", "knowledge_bases"):
        for i, t in enumerate(tree.get(list_key) or []):
            place = f"{list_key}[{i}]"
            t["key"] = secret(t, "key", environ, option)
            t.pop("key_env", None)
            t.pop("key_option", None)
            if list_key == "knowledge_bases":
                t["dataset_id"] = secret(t, "dataset_id", environ, option)
                t.pop("dataset_id_env", None)
                t.pop("dataset_id_option", None)
            ds = w.datasets.get(place + ".dataset")
            if ds is not None:
                t["dataset"] = {"name": ds.name, "format": ds.format, "data": ds.data}
    return {"source": w.source, "workload": tree}


def from_message(data):
    """The workload a worker got from the master (keys resolved, datasets inlined)."""
    if not isinstance(data, dict) or data.get("default"):
        return default()
    if data.get("error"):
        raise WorkloadError([str(data["error"])])
    tree = data.get("workload")
    src = str(data.get("source") or "master")
    c = _Checker(src + " (from the master)", from_master=True)
    c.check(tree)
    if c.problems:
        raise WorkloadError(c.problems)
    datasets = {}
    for list_key in ("apps", "knowledge_bases"):
        for i, t in enumerate(tree.get(list_key) or []):
            ds = t.get("dataset")
            if isinstance(ds, dict):
                place = f"{list_key}[{i}].dataset"
                data_ = ds.get("data")
                if isinstance(data_, str):
                    data_ = data_.encode("utf-8")
                datasets[place] = parse_dataset(src, place, ds.get("name", "?"), ds.get("format", ""), data_ or b"")
    return Workload(src, tree, datasets)


def workload_path(argv, environ):
    """--dify-workload FILE from the command line (or DIFYLOAD_WORKLOAD): Locust builds the
    user classes from the locustfile's module before it parses options, so the path is
    looked up here at import time."""
    for i, a in enumerate(argv):
        if a == "--dify-workload" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--dify-workload="):
            return a.split("=", 1)[1]
    return environ.get("DIFYLOAD_WORKLOAD", "")


# --- Locust side: user classes, wait times ---------------------------------------------------

def _wait_time(spec, locust_wait):
    """A Locust wait_time function for a workload wait_time table."""
    if not spec:
        return locust_wait.constant(0)
    (k, v), = spec.items()
    if k == "between":
        return locust_wait.between(float(v[0]), float(v[1]))
    if k == "constant":
        return locust_wait.constant(float(v))
    if k == "constant_pacing":
        return locust_wait.constant_pacing(float(v))
    if k == "constant_throughput":
        return locust_wait.constant_pacing(1.0 / float(v))
    rate = float(v)  # poisson: Locust 2.4x has it; 2.12 does not, so it is written here
    return lambda _user: random.expovariate(rate)


def user_classes(w, base, tag, locust_wait, module):
    """One Locust class per workload user class, subclasses of base. Each task calls
    base._run_target(target name); base looks the target up in the current workload."""
    out = {}
    for u in w.tree["users"]:
        tasks = {}
        for t in u["tasks"]:
            target = t["app"]
            tname = t.get("name") or target

            def fn(self, _target=target):
                self._run_target(_target)

            fn.__name__ = fn.__qualname__ = tname
            if t.get("tags"):
                fn = tag(*t["tags"])(fn)
            tasks[fn] = int(t.get("weight", 1))
        attrs = {
            "__module__": module,
            "__doc__": f"Workload user class {u['name']} ({w.source}).",
            "weight": int(u.get("weight", 1)),
            "fixed_count": int(u.get("fixed_count", 0)),
            "wait_time": _wait_time(u.get("wait_time"), locust_wait),
            "tasks": {f: n for f, n in tasks.items() if n > 0},
        }
        if u.get("host"):
            attrs["host"] = u["host"]
        out[u["name"]] = type(u["name"], (base,), attrs)
    return out


# Locust's side: locustfile.py calls install(); nothing above needs Locust.

def _slo(env, w):
    """The workload's [slo] fills the --slo-* options left at 0 (they reach every worker)."""
    opts = env.parsed_options
    for key, opt in (("ttft_ms", "slo_ttft"), ("tpot_ms", "slo_tpot"), ("e2e_ms", "slo_e2e")):
        v = ((w.tree.get("slo") or {}).get(key)) or 0
        if opts is not None and v and not getattr(opts, opt, 0):
            setattr(opts, opt, float(v))


def _workload_init(current, mock_options, environment, runner=None, **_kw):
    """Master: at every test start, re-read --dify-workload and send it (keys resolved,
    datasets inlined) to every worker before the first spawn, so a file edited between two
    starts is what runs next. Workers: run what the master sent."""
    import logging
    from locust.runners import MasterRunner, WorkerRunner
    log = logging.getLogger("difyload.workload")
    env = environment
    runner = runner or env.runner
    if isinstance(runner, WorkerRunner):
        def on_workload(environment=None, msg=None, **_kw):
            try:
                current["workload"] = from_message(msg.data)
                log.info("workload from the master: %s", current["workload"].source)
            except WorkloadError as e:
                log.error("refusing the master's workload, running the previous one's classes with no targets:\n%s", e)
                current["workload"] = Workload("refused", {"apps": [], "knowledge_bases": [], "users": []}, {})

        runner.register_message(MESSAGE_TYPE, on_workload)
        return

    def option(name):
        return getattr(env.parsed_options, name, None) or mock_options.get(name, "")

    def on_test_start(**_kw):
        path = getattr(env.parsed_options, "dify_workload", "") if env.parsed_options else ""
        if not path:
            current["workload"] = default()
            msg = {"default": True, "source": DEFAULT_SOURCE}
        else:
            try:
                w = load(path)
                check_env(w, os.environ)
                current["workload"] = w
                _slo(env, w)
                msg = message(w, os.environ, option)
            except WorkloadError as e:
                log.error("the workload cannot run; workers run nothing:\n%s", e)
                msg = {"source": path, "error": str(e)}
        if isinstance(runner, MasterRunner):
            runner.send_message(MESSAGE_TYPE, msg)

    if env.parsed_options is not None:
        _slo(env, current["workload"])
    env.events.test_start.add_listener(on_test_start)


def install(events, current, mock_options):
    """Registers the workload's master-to-worker sync on Locust's init event. current is the
    locustfile's {"workload": Workload} (what its users run), mock_options what a key_option
    falls back to without a master option.

    Master: at every test start, re-read --dify-workload and send it (keys resolved, datasets
    inlined) to every worker before the first spawn. Workers: run what the master sent."""
    events.init.add_listener(lambda environment, runner=None, **kw: _workload_init(
        current, mock_options, environment, runner, **kw))

