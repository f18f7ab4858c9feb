package workload

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/difyload/difyload/sse"
)

// origin says what a decoded map came from: a file the user wrote, or the master's message
// (keys resolved, datasets inlined).
type origin int

const (
	fromFile origin = iota
	fromMaster
)

// decoder turns the generic tree (TOML, JSON or msgpack) into a Workload.
type decoder struct {
	p      *problems
	origin origin
	// dataset opens a dataset given by file name (file origin only).
	dataset func(place, name string) (*Dataset, error)
}

// obj walks one table, remembering which keys were read so the rest can be reported.
type obj struct {
	d     *decoder
	place string
	m     map[string]any
	known []string
}

func (d *decoder) obj(place string, v any) *obj {
	m, ok := v.(map[string]any)
	if !ok {
		d.p.add(place, fmt.Sprintf("is %s, want a table", kind(v)), "write it as a table, e.g. { key = value } in TOML or {\"key\": value} in JSON")
		return nil
	}
	return &obj{d: d, place: place, m: m}
}

func (o *obj) at(key string) string {
	if o.place == "" {
		return key
	}
	return o.place + "." + key
}

func (o *obj) get(key string) (any, bool) {
	o.known = append(o.known, key)
	v, ok := o.m[key]
	return v, ok && v != nil
}

// done reports every key nobody asked for.
func (o *obj) done() {
	if o == nil {
		return
	}
	var unknown []string
	for k := range o.m {
		if !slices.Contains(o.known, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		fix := "remove it; allowed here: " + strings.Join(o.known, ", ")
		if c := closest(k, o.known); c != "" {
			fix = fmt.Sprintf("did you mean %q? allowed here: %s", c, strings.Join(o.known, ", "))
		}
		o.d.p.add(o.at(k), "unknown field", fix)
	}
}

func (o *obj) str(key string, required bool, fix string) string {
	v, ok := o.get(key)
	if !ok {
		if required {
			o.d.p.add(o.at(key), "is missing", fix)
		}
		return ""
	}
	s, isStr := v.(string)
	if b, isBytes := v.([]byte); isBytes {
		s, isStr = string(b), true
	}
	if !isStr {
		o.d.p.add(o.at(key), fmt.Sprintf("is %s, want a string", kind(v)), fix)
		return ""
	}
	if required && strings.TrimSpace(s) == "" {
		o.d.p.add(o.at(key), "is empty", fix)
	}
	return s
}

func (o *obj) number(key string) (float64, bool) {
	v, ok := o.get(key)
	if !ok {
		return 0, false
	}
	f, isNum := toFloat(v)
	if !isNum {
		o.d.p.add(o.at(key), fmt.Sprintf("is %s, want a number", kind(v)), "write a number without quotes")
		return 0, false
	}
	return f, true
}

func (o *obj) nonNegInt(key string, def int) int {
	f, ok := o.number(key)
	if !ok {
		return def
	}
	if f < 0 || f != math.Trunc(f) || f > 1e9 {
		o.d.p.add(o.at(key), fmt.Sprintf("is %v, want a whole number ≥ 0", f), "write e.g. 1")
		return def
	}
	return int(f)
}

func (o *obj) seconds(key string) time.Duration {
	v, ok := o.get(key)
	if !ok {
		return 0
	}
	d, ok := o.d.duration(o.at(key), v)
	if !ok {
		return 0
	}
	return d
}

func (d *decoder) duration(place string, v any) (time.Duration, bool) {
	if s, ok := v.(string); ok {
		dd, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || dd < 0 {
			d.p.add(place, fmt.Sprintf("%q is not a duration", s), "write seconds as a number (e.g. 30) or a duration such as \"1.5s\"")
			return 0, false
		}
		return dd, true
	}
	f, ok := toFloat(v)
	if !ok || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f > 1e7 {
		d.p.add(place, fmt.Sprintf("is %s, want seconds ≥ 0", kind(v)), "write seconds as a number, e.g. 30")
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

func (o *obj) list(key string) ([]any, bool) {
	v, ok := o.get(key)
	if !ok {
		return nil, false
	}
	l, isList := v.([]any)
	if !isList {
		// TOML arrays of tables decode as []map[string]any.
		if ms, isMaps := v.([]map[string]any); isMaps {
			for _, m := range ms {
				l = append(l, m)
			}
			return l, true
		}
		o.d.p.add(o.at(key), fmt.Sprintf("is %s, want a list", kind(v)), "write a list in [ ]")
		return nil, false
	}
	return l, true
}

func (o *obj) table(key string) (map[string]any, bool) {
	v, ok := o.get(key)
	if !ok {
		return nil, false
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		o.d.p.add(o.at(key), fmt.Sprintf("is %s, want a table", kind(v)), "write a table, e.g. { dept = \"IT\" }")
		return nil, false
	}
	return normalize(m).(map[string]any), true
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "empty"
	case string, []byte:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "a list"
	}
	if _, ok := toFloat(v); ok {
		return "a number"
	}
	return fmt.Sprintf("a %T", v)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case int32:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint8:
		return float64(x), true
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	return 0, false
}

// normalize makes a decoded value JSON-encodable the same way whatever decoded it
// ([]byte → string, []map → []any, nested).
func normalize(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

var (
	classNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// AppTypes returns the app types a worker of this version runs.
func AppTypes() []string {
	return []string{string(sse.ModeChat), string(sse.ModeAgent), string(sse.ModeChatflow), string(sse.ModeCompletion), string(sse.ModeWorkflow)}
}

// decode checks the root table and builds the Workload.
func (d *decoder) decode(root any) *Workload {
	w := &Workload{}
	o := d.obj("", root)
	if o == nil {
		return w
	}
	if v, ok := o.get("version"); ok {
		if f, isNum := toFloat(v); !isNum || f != 1 {
			d.p.add("version", fmt.Sprintf("is %v, this difyload reads version 1", v), "write version = 1 or leave it out")
		}
	}
	names := map[string]string{} // target name → place
	if l, ok := o.list("apps"); ok {
		for i, v := range l {
			place := fmt.Sprintf("apps[%d]", i)
			if a, ok := d.app(place, v); ok {
				d.unique(names, place, a.Name)
				w.Apps = append(w.Apps, a)
			}
		}
	}
	if l, ok := o.list("knowledge_bases"); ok {
		for i, v := range l {
			place := fmt.Sprintf("knowledge_bases[%d]", i)
			if k, ok := d.knowledgeBase(place, v); ok {
				d.unique(names, place, k.Name)
				w.KnowledgeBases = append(w.KnowledgeBases, k)
			}
		}
	}
	classes := map[string]string{}
	l, ok := o.list("users")
	if !ok || len(l) == 0 {
		d.p.add("users", "no user classes", "add at least one [[users]] table with a name and tasks")
	}
	for i, v := range l {
		place := fmt.Sprintf("users[%d]", i)
		if u, ok := d.userClass(place, v, names); ok {
			if prev, dup := classes[u.Name]; dup {
				d.p.add(place+".name", fmt.Sprintf("%q is already the name of %s", u.Name, prev), "give every user class its own name")
			}
			classes[u.Name] = place
			w.Users = append(w.Users, u)
		}
	}
	if m, ok := o.get("slo"); ok {
		if so := d.obj("slo", m); so != nil {
			w.SLO.TTFT = millis(so, "ttft_ms")
			w.SLO.TPOT = millis(so, "tpot_ms")
			w.SLO.E2E = millis(so, "e2e_ms")
			so.done()
		}
	}
	o.done()
	return w
}

func millis(o *obj, key string) time.Duration {
	f, ok := o.number(key)
	if !ok {
		return 0
	}
	if f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		o.d.p.add(o.at(key), "is negative", "write milliseconds ≥ 0 (0 = no objective)")
		return 0
	}
	return time.Duration(f * float64(time.Millisecond))
}

func (d *decoder) unique(names map[string]string, place, name string) {
	if name == "" {
		return
	}
	if prev, dup := names[name]; dup {
		d.p.add(place+".name", fmt.Sprintf("%q is already the name of %s", name, prev), "give every app and knowledge base its own name")
		return
	}
	names[name] = place
}

func (d *decoder) secret(o *obj, prefix string, required bool) Secret {
	var s Secret
	s.Env = o.str(prefix+"_env", false, "write the name of an environment variable")
	s.Option = o.str(prefix+"_option", false, "write a master option name such as dify_simple_app_key")
	if d.origin == fromMaster {
		s.Value = o.str(prefix, false, "")
	} else if _, ok := o.m[prefix]; ok && prefix == "key" {
		o.get(prefix)
		d.p.add(o.at(prefix), "keys are never written in a workload file", "put the key in an environment variable and name it with key_env")
	}
	if s.Env != "" && !envNameRE.MatchString(s.Env) {
		d.p.add(o.at(prefix+"_env"), fmt.Sprintf("%q is not an environment variable name", s.Env), "use letters, digits and _ (e.g. MY_APP_KEY)")
	}
	if s.Env != "" && s.Option != "" {
		d.p.add(o.at(prefix+"_env"), prefix+"_env and "+prefix+"_option are both set", "keep one of them")
	}
	if required && s.Env == "" && s.Option == "" && s.Value == "" {
		d.p.add(o.at(prefix+"_env"), "is missing", fmt.Sprintf("name the environment variable that holds it: %s_env = \"MY_VAR\"", prefix))
	}
	return s
}

func (d *decoder) app(place string, v any) (App, bool) {
	o := d.obj(place, v)
	if o == nil {
		return App{}, false
	}
	defer o.done()
	a := App{Name: o.str("name", true, "give the app a name, e.g. name = \"faq-bot\"")}
	appTypes := AppTypes()
	typ := o.str("type", true, "set type to one of "+strings.Join(appTypes, ", "))
	if typ != "" && !slices.Contains(appTypes, typ) {
		fix := "use one of " + strings.Join(appTypes, ", ")
		if c := closest(typ, appTypes); c != "" {
			fix = fmt.Sprintf("did you mean %q? ", c) + fix
		}
		switch typ {
		case "advanced-chat":
			fix = "an advanced-chat app is type \"chatflow\""
		case "agent-chat":
			fix = "an agent-chat app is type \"agent\""
		}
		d.p.add(o.at("type"), fmt.Sprintf("unknown app type %q", typ), fix)
	}
	a.Type = sse.Mode(typ)
	a.Key = d.secret(o, "key", true)
	if m, ok := o.table("inputs"); ok {
		a.Inputs = m
	}
	a.Queries = d.queries(o, a.Type != sse.ModeWorkflow)
	a.QueryInput = o.str("query_input", false, "write the input variable's name")
	if a.Type == sse.ModeWorkflow && a.QueryInput == "" {
		a.QueryInput = "query"
	}
	if a.QueryInput != "" && a.Type != sse.ModeWorkflow && a.Type != sse.ModeCompletion {
		d.p.add(o.at("query_input"), "is only for completion and workflow apps", "remove it: a "+typ+" app gets the query as its query field")
	}
	if l, ok := o.list("files"); ok {
		for i, f := range l {
			if _, isMap := f.(map[string]any); !isMap {
				d.p.add(fmt.Sprintf("%s.files[%d]", place, i), "is not a table", "write { type = \"image\", transfer_method = \"remote_url\", url = \"https://…\" }")
			}
			a.Files = append(a.Files, normalize(f))
		}
	}
	a.Timeout = o.seconds("timeout")
	a.Turns = IntRange{Min: 1, Max: 1}
	if cv, ok := o.get("conversation"); ok {
		if a.Type == sse.ModeCompletion || a.Type == sse.ModeWorkflow {
			d.p.add(o.at("conversation"), "a "+typ+" app has no conversations", "remove it; only chat, agent and chatflow apps keep a conversation_id")
		}
		if co := d.obj(o.at("conversation"), cv); co != nil {
			if t, ok := co.get("turns"); ok {
				a.Turns = d.intRange(co.at("turns"), t)
			}
			if t, ok := co.get("think_time"); ok {
				a.ThinkTime = d.durRange(co.at("think_time"), t)
			}
			co.done()
		}
	}
	return a, a.Name != ""
}

func (d *decoder) intRange(place string, v any) IntRange {
	bad := func() IntRange {
		d.p.add(place, fmt.Sprintf("is %s", kind(v)), "write a whole number ≥ 1 (e.g. 3) or a range [min, max]")
		return IntRange{Min: 1, Max: 1}
	}
	one := func(x any) (int, bool) {
		f, ok := toFloat(x)
		if !ok || f < 1 || f != math.Trunc(f) || f > 1000 {
			return 0, false
		}
		return int(f), true
	}
	if l, ok := v.([]any); ok {
		if len(l) != 2 {
			return bad()
		}
		lo, ok1 := one(l[0])
		hi, ok2 := one(l[1])
		if !ok1 || !ok2 || hi < lo {
			return bad()
		}
		return IntRange{Min: lo, Max: hi}
	}
	n, ok := one(v)
	if !ok {
		return bad()
	}
	return IntRange{Min: n, Max: n}
}

func (d *decoder) durRange(place string, v any) DurationRange {
	if l, ok := v.([]any); ok {
		if len(l) != 2 {
			d.p.add(place, "is a list but not [min, max]", "write seconds (e.g. 2) or a range [1, 3]")
			return DurationRange{}
		}
		lo, ok1 := d.duration(place+"[0]", l[0])
		hi, ok2 := d.duration(place+"[1]", l[1])
		if ok1 && ok2 && hi < lo {
			d.p.add(place, "max is below min", "write [min, max]")
		}
		return DurationRange{Min: lo, Max: max(lo, hi)}
	}
	x, _ := d.duration(place, v)
	return DurationRange{Min: x, Max: x}
}

// queries reads queries (inline list), dataset (file) and pick.
func (d *decoder) queries(o *obj, required bool) Queries {
	var q Queries
	if l, ok := o.list("queries"); ok {
		for i, v := range l {
			s, isStr := v.(string)
			if !isStr || strings.TrimSpace(s) == "" {
				d.p.add(fmt.Sprintf("%s[%d]", o.at("queries"), i), "is not a non-empty string", "write each query as a string")
				continue
			}
			q.Inline = append(q.Inline, s)
		}
		if len(l) == 0 {
			d.p.add(o.at("queries"), "is an empty list", "add at least one query or remove the field")
		}
	}
	if v, ok := o.get("dataset"); ok {
		if len(q.Inline) > 0 {
			d.p.add(o.at("dataset"), "queries and dataset are both set", "keep one of them")
		}
		q.Dataset = d.datasetValue(o.at("dataset"), v)
	}
	switch p := o.str("pick", false, "write \"sequential\" or \"random\""); p {
	case "", string(PickSequential):
		q.Pick = PickSequential
	case string(PickRandom):
		q.Pick = PickRandom
	default:
		d.p.add(o.at("pick"), fmt.Sprintf("unknown pick %q", p), "write \"sequential\" or \"random\"")
	}
	if required && q.Inline == nil && q.Dataset == nil && !o.has("queries") && !o.has("dataset") {
		d.p.add(o.at("queries"), "no queries", "add queries = [\"…\"] or dataset = \"questions.jsonl\"")
	}
	return q
}

func (o *obj) has(key string) bool { _, ok := o.m[key]; return ok }

func (d *decoder) datasetValue(place string, v any) *Dataset {
	switch x := v.(type) {
	case string:
		if d.origin == fromMaster || d.dataset == nil {
			d.p.add(place, "a dataset file name in the master's message", "the master inlines datasets; upgrade the master's locustfile.py")
			return nil
		}
		ds, err := d.dataset(place, x)
		if err != nil {
			d.p.errs = append(d.p.errs, err)
			return nil
		}
		return ds
	case map[string]any:
		o := d.obj(place, x)
		name := o.str("name", true, "")
		format := o.str("format", true, "")
		var data []byte
		if raw, ok := o.get("data"); ok {
			switch b := raw.(type) {
			case []byte:
				data = b
			case string:
				data = []byte(b)
			default:
				d.p.add(o.at("data"), "is not bytes", "")
			}
		}
		o.done()
		ds, err := ParseDataset(d.p.file, place, name, format, data)
		if err != nil {
			d.p.errs = append(d.p.errs, err)
			return nil
		}
		return ds
	}
	d.p.add(place, fmt.Sprintf("is %s", kind(v)), "write the dataset's file name, e.g. dataset = \"questions.jsonl\"")
	return nil
}

func (d *decoder) knowledgeBase(place string, v any) (KnowledgeBase, bool) {
	o := d.obj(place, v)
	if o == nil {
		return KnowledgeBase{}, false
	}
	defer o.done()
	k := KnowledgeBase{Name: o.str("name", true, "give the knowledge base a name, e.g. name = \"handbook\"")}
	k.DatasetID.Value = o.str("dataset_id", false, "write the knowledge base's id")
	k.DatasetID.Env = o.str("dataset_id_env", false, "write the name of an environment variable")
	k.DatasetID.Option = o.str("dataset_id_option", false, "write a master option name such as dify_dataset_id")
	if k.DatasetID == (Secret{}) {
		d.p.add(o.at("dataset_id"), "is missing", "write dataset_id = \"<the knowledge base id>\" (or dataset_id_env)")
	}
	k.Key = d.secret(o, "key", true)
	k.Queries = d.queries(o, true)
	if m, ok := o.table("retrieval_model"); ok {
		k.RetrievalModel = m
	}
	k.Timeout = o.seconds("timeout")
	return k, k.Name != ""
}

func (d *decoder) userClass(place string, v any, targets map[string]string) (UserClass, bool) {
	o := d.obj(place, v)
	if o == nil {
		return UserClass{}, false
	}
	defer o.done()
	u := UserClass{Name: o.str("name", true, "give the class a name, e.g. name = \"ChatUser\"")}
	if u.Name != "" && !classNameRE.MatchString(u.Name) {
		d.p.add(o.at("name"), fmt.Sprintf("%q is not a Python class name", u.Name), "use letters, digits and _, not starting with a digit (e.g. FaqUser)")
	}
	u.Weight = o.nonNegInt("weight", 1)
	u.FixedCount = o.nonNegInt("fixed_count", 0)
	u.Host = o.str("host", false, "write a base URL such as https://dify.example.com")
	u.Wait = Wait{Kind: WaitConstant}
	if wv, ok := o.get("wait_time"); ok {
		u.Wait = d.wait(o.at("wait_time"), wv)
	}
	l, ok := o.list("tasks")
	if !ok || len(l) == 0 {
		d.p.add(o.at("tasks"), "no tasks", "add tasks = [{ app = \"<an app or knowledge base name>\" }]")
	}
	seen := map[string]bool{}
	for i, tv := range l {
		tp := fmt.Sprintf("%s.tasks[%d]", place, i)
		to := d.obj(tp, tv)
		if to == nil {
			continue
		}
		t := Task{Target: to.str("app", true, "name an app or knowledge base of this workload")}
		if t.Target != "" {
			if _, ok := targets[t.Target]; !ok {
				all := make([]string, 0, len(targets))
				for n := range targets {
					all = append(all, n)
				}
				sort.Strings(all)
				d.p.add(to.at("app"), fmt.Sprintf("no app or knowledge base is called %q", t.Target), "use one of: "+strings.Join(all, ", "))
			}
		}
		t.Name = to.str("name", false, "write a task name")
		if t.Name == "" {
			t.Name = t.Target
		}
		if seen[t.Name] {
			d.p.add(tp, fmt.Sprintf("a second task called %q", t.Name), "give the task its own name = \"…\"")
		}
		seen[t.Name] = true
		t.Weight = to.nonNegInt("weight", 1)
		if tl, ok := to.list("tags"); ok {
			for j, tg := range tl {
				s, isStr := tg.(string)
				if !isStr || s == "" {
					d.p.add(fmt.Sprintf("%s.tags[%d]", tp, j), "is not a non-empty string", "write tags as strings")
					continue
				}
				t.Tags = append(t.Tags, s)
			}
		}
		to.done()
		u.Tasks = append(u.Tasks, t)
	}
	return u, u.Name != ""
}

// waitKinds are the wait functions a user class may name.
func waitKinds() []string {
	return []string{string(WaitBetween), string(WaitConstant), string(WaitConstantPacing), string(WaitConstantThroughput), string(WaitPoisson)}
}

func (d *decoder) wait(place string, v any) Wait {
	m, ok := v.(map[string]any)
	fix := "write one of { between = [1, 3] }, { constant = 1 }, { constant_pacing = 10 }, { constant_throughput = 0.5 }, { poisson = 2 }"
	if !ok || len(m) != 1 {
		d.p.add(place, "is not a table with one wait function", fix)
		return Wait{Kind: WaitConstant}
	}
	for k, x := range m {
		p := place + "." + k
		switch WaitKind(k) {
		case WaitBetween:
			r := d.durRange(p, x)
			if _, isList := x.([]any); !isList {
				d.p.add(p, "is not [min, max]", fix)
			}
			return Wait{Kind: WaitBetween, Min: r.Min, Max: r.Max}
		case WaitConstant, WaitConstantPacing:
			s, _ := d.duration(p, x)
			return Wait{Kind: WaitKind(k), Min: s}
		case WaitConstantThroughput, WaitPoisson:
			f, isNum := toFloat(x)
			if !isNum || !(f > 0) || math.IsInf(f, 0) {
				d.p.add(p, "is not a positive rate", "write task runs per second per user, e.g. 0.5")
				return Wait{Kind: WaitConstant}
			}
			return Wait{Kind: WaitKind(k), Rate: f}
		default:
			f := fix
			if c := closest(k, waitKinds()); c != "" {
				f = fmt.Sprintf("did you mean %q? ", c) + fix
			}
			d.p.add(p, fmt.Sprintf("unknown wait function %q", k), f)
		}
	}
	return Wait{Kind: WaitConstant}
}
