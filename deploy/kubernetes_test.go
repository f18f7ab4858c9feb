package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/difyload/difyload/difymock"
)

const (
	kubeDir       = "kubernetes"
	locustfileRel = "../locustfile.py"
	difyloadImage = "difyload/difyload"
)

// kustomization is the part of kustomize's Kustomization/Component this repository uses.
// Decoding is strict, so a field the test does not implement fails the test instead of
// being ignored.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources,omitempty"`
	Components []string `json:"components,omitempty"`
	Patches    []struct {
		Path string `json:"path"`
	} `json:"patches,omitempty"`
	Labels []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
}

// object is one decoded manifest.
type object struct {
	file string // path relative to deploy/
	kind string
	name string
	obj  any // *appsv1.Deployment, *corev1.Service, *corev1.ConfigMap, *corev1.Secret, *autoscalingv2.HorizontalPodAutoscaler
}

// decodeStrict turns one YAML document into v: duplicate keys and unknown fields are errors.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the document")
	}
	return nil
}

// splitDocs splits a YAML stream on "---" lines and drops documents without content.
func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(data), -1) {
		j, err := yaml.YAMLToJSON([]byte(d))
		if err == nil && (string(j) == "null" || len(bytes.TrimSpace(j)) == 0) {
			continue
		}
		docs = append(docs, []byte(d))
	}
	return docs
}

func newTyped(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	}
	return nil, fmt.Errorf("unsupported apiVersion %q kind %q", apiVersion, kind)
}

func decodeObject(file string, doc []byte) (object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return object{}, fmt.Errorf("%s: %w", file, err)
	}
	v, err := newTyped(tm.APIVersion, tm.Kind)
	if err != nil {
		return object{}, fmt.Errorf("%s: %w", file, err)
	}
	if err := decodeStrict(doc, v); err != nil {
		return object{}, fmt.Errorf("%s: strict decode as %s: %w", file, tm.Kind, err)
	}
	meta := reflect.ValueOf(v).Elem().FieldByName("ObjectMeta").Interface().(metav1.ObjectMeta)
	if meta.Name == "" {
		return object{}, fmt.Errorf("%s: %s without metadata.name", file, tm.Kind)
	}
	return object{file: file, kind: tm.Kind, name: meta.Name, obj: v}, nil
}

func decodeFile(file string) ([]object, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []object
	for _, doc := range splitDocs(data) {
		o, err := decodeObject(file, doc)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no manifest", file)
	}
	return out, nil
}

func loadKustomization(dir, wantKind string) (*kustomization, error) {
	file := filepath.Join(dir, "kustomization.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := decodeStrict(data, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	want := map[string]string{"Kustomization": "kustomize.config.k8s.io/v1beta1", "Component": "kustomize.config.k8s.io/v1alpha1"}
	if k.Kind != wantKind || k.APIVersion != want[wantKind] {
		return nil, fmt.Errorf("%s: got %s %s, want %s %s", file, k.APIVersion, k.Kind, want[wantKind], wantKind)
	}
	return &k, nil
}

// renderer applies the subset of kustomize the repository uses (resources, components,
// strategic-merge patches of container env, labels on metadata) and records every file it
// read.
type renderer struct {
	used map[string]bool
}

func (r *renderer) render(dir, kind string) ([]object, error) {
	k, err := loadKustomization(dir, kind)
	if err != nil {
		return nil, err
	}
	r.used[filepath.Join(dir, "kustomization.yaml")] = true
	var objs []object
	for _, res := range k.Resources {
		p := filepath.Join(dir, res)
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: resource %s: %w", dir, res, err)
		}
		if st.IsDir() {
			sub, err := r.render(p, "Kustomization")
			if err != nil {
				return nil, err
			}
			objs = append(objs, sub...)
			continue
		}
		sub, err := decodeFile(p)
		if err != nil {
			return nil, err
		}
		r.used[p] = true
		objs = append(objs, sub...)
	}
	for _, c := range k.Components {
		comp, err := r.render(filepath.Join(dir, c), "Component")
		if err != nil {
			return nil, err
		}
		objs = append(objs, comp...)
	}
	for _, p := range k.Patches {
		file := filepath.Join(dir, p.Path)
		if err := r.applyPatch(objs, file); err != nil {
			return nil, err
		}
	}
	for _, l := range k.Labels {
		if l.IncludeSelectors || l.IncludeTemplates {
			return nil, fmt.Errorf("%s: labels with includeSelectors/includeTemplates: not implemented by this test", dir)
		}
		for _, o := range objs {
			meta := reflect.ValueOf(o.obj).Elem().FieldByName("ObjectMeta").Addr().Interface().(*metav1.ObjectMeta)
			if meta.Labels == nil {
				meta.Labels = map[string]string{}
			}
			for key, v := range l.Pairs {
				meta.Labels[key] = v
			}
		}
	}
	seen := map[string]string{}
	for _, o := range objs {
		id := o.kind + "/" + o.name
		if f, dup := seen[id]; dup {
			return nil, fmt.Errorf("%s defined twice (%s, %s)", id, f, o.file)
		}
		seen[id] = o.file
	}
	return objs, nil
}

// applyPatch merges a Deployment patch that sets container env vars (by container name, then
// by variable name), like kustomize's strategic merge. Any other field in the patch fails.
func (r *renderer) applyPatch(objs []object, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	r.used[file] = true
	var patch appsv1.Deployment
	if err := decodeStrict(data, &patch); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if patch.APIVersion != "apps/v1" || patch.Kind != "Deployment" {
		return fmt.Errorf("%s: only apps/v1 Deployment patches are implemented", file)
	}
	var target *appsv1.Deployment
	for _, o := range objs {
		if d, ok := o.obj.(*appsv1.Deployment); ok && o.name == patch.Name {
			target = d
		}
	}
	if target == nil {
		return fmt.Errorf("%s: patches Deployment %q, which the kustomization does not have", file, patch.Name)
	}
	rest := patch.DeepCopy()
	for i, pc := range patch.Spec.Template.Spec.Containers {
		var tc *corev1.Container
		for j := range target.Spec.Template.Spec.Containers {
			if target.Spec.Template.Spec.Containers[j].Name == pc.Name {
				tc = &target.Spec.Template.Spec.Containers[j]
			}
		}
		if tc == nil {
			return fmt.Errorf("%s: container %q not in Deployment %q", file, pc.Name, patch.Name)
		}
		for _, e := range pc.Env {
			replaced := false
			for k := range tc.Env {
				if tc.Env[k].Name == e.Name {
					tc.Env[k], replaced = e, true
				}
			}
			if !replaced {
				tc.Env = append(tc.Env, e)
			}
		}
		rest.Spec.Template.Spec.Containers[i] = corev1.Container{}
	}
	rest.Spec.Template.Spec.Containers = nil
	rest.TypeMeta, rest.Name = metav1.TypeMeta{}, ""
	if !reflect.DeepEqual(*rest, appsv1.Deployment{}) {
		return fmt.Errorf("%s: the patch sets fields besides container env: not implemented by this test", file)
	}
	return nil
}

func renderDir(t *testing.T, dir string) ([]object, map[string]bool) {
	t.Helper()
	r := &renderer{used: map[string]bool{}}
	objs, err := r.render(dir, "Kustomization")
	if err != nil {
		t.Fatal(err)
	}
	return objs, r.used
}

// kubeRendering is a kustomization a user applies.
type kubeRendering struct {
	name     string
	dir      string
	withMock bool
}

// kubeRenderings are the kustomizations a user applies.
func kubeRenderings() []kubeRendering {
	return []kubeRendering{
		{"base", "kubernetes/base", false},
		{"overlay-mock", "kubernetes/overlays/mock", true},
	}
}

func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	t.Parallel()
	used := map[string]bool{}
	for _, r := range kubeRenderings() {
		_, u := renderDir(t, r.dir)
		for f := range u {
			used[f] = true
		}
	}
	// Every YAML file under kubernetes/ decodes on its own and is used by a kustomization.
	err := filepath.WalkDir(kubeDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (!strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml")) {
			return err
		}
		if !used[p] {
			t.Errorf("%s is not referenced by any kustomization a user applies", p)
		}
		if filepath.Base(p) == "kustomization.yaml" {
			return nil
		}
		if filepath.Base(filepath.Dir(p)) == "mock" && strings.HasPrefix(filepath.Base(p), "master-target") {
			return nil // a patch: decoded by applyPatch
		}
		_, err = decodeFile(p)
		if err != nil {
			t.Error(err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The strict decoder must reject what a lenient one would silently drop.
func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, doc string }{
		{"unknown top-level field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {}\nstatus2: {}\n"},
		{"misspelt spec field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicaz: 3}\n"},
		{"unknown container field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers: [{name: a, imagee: b}]\n"},
		{"duplicate key", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n"},
		{"unsupported kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := decodeObject("test.yaml", []byte(tt.doc)); err == nil {
				t.Errorf("decoded without error:\n%s", tt.doc)
			}
		})
	}
}

// cliEnvNames are the environment variables `difyload` reads, from its source.
func cliEnvNames(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../cmd/difyload/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CLI sources: %v", err)
	}
	re := regexp.MustCompile(`env(?:String|Int|Bool)\(env, "([A-Z0-9_]+)"`)
	names := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
	}
	for _, must := range []string{"LOCUST_MASTER_NODE_HOST", "LOCUST_MASTER_NODE_PORT", "DIFY_SIMPLE_APP_KEY", "DIFYLOAD_MOCK_ADDR"} {
		if !names[must] {
			t.Fatalf("scan of cmd/difyload found no %s: %v", must, names)
		}
	}
	return names
}

// locustfileEnvNames are the env_var names locustfile.py's custom arguments read.
func locustfileEnvNames(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(locustfileRel)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`env_var="([A-Z0-9_]+)"`).FindAllStringSubmatch(string(src), -1) {
		names[m[1]] = true
	}
	if len(names) < 4 {
		t.Fatalf("locustfile.py: found only %v", names)
	}
	return names
}

// dockerfileUID is the numeric uid of the runtime image's USER.
func dockerfileUID(t *testing.T) int64 {
	t.Helper()
	src, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^USER\s+(\d+)(?::\d+)?\s*$`).FindAllStringSubmatch(string(src), -1)
	if len(m) == 0 {
		t.Fatal("Dockerfile: no numeric USER")
	}
	uid, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64)
	return uid
}

// flagValue finds --name=value or --name value in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func hasArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}

func imageName(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

func envMap(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// containerPort resolves a Service targetPort against a pod template.
func containerPort(spec corev1.PodSpec, target intstr.IntOrString) (int32, bool) {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if (target.Type == intstr.String && p.Name == target.StrVal) || (target.Type == intstr.Int && p.ContainerPort == target.IntVal) {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

type kubeSet struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
}

func index(t *testing.T, objs []object) kubeSet {
	t.Helper()
	s := kubeSet{map[string]*appsv1.Deployment{}, map[string]*corev1.Service{}, map[string]*corev1.ConfigMap{}, map[string]*corev1.Secret{}, map[string]*autoscalingv2.HorizontalPodAutoscaler{}}
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			s.deployments[o.name] = v
		case *corev1.Service:
			s.services[o.name] = v
		case *corev1.ConfigMap:
			s.configMaps[o.name] = v
		case *corev1.Secret:
			s.secrets[o.name] = v
		case *autoscalingv2.HorizontalPodAutoscaler:
			s.hpas[o.name] = v
		}
	}
	return s
}

// role finds the one Deployment whose first container satisfies match.
func (s kubeSet) role(t *testing.T, what string, match func(corev1.Container) bool) (string, *appsv1.Deployment) {
	t.Helper()
	var names []string
	for n, d := range s.deployments {
		if len(d.Spec.Template.Spec.Containers) > 0 && match(d.Spec.Template.Spec.Containers[0]) {
			names = append(names, n)
		}
	}
	if len(names) != 1 {
		t.Fatalf("want exactly one %s Deployment, got %v", what, names)
	}
	return names[0], s.deployments[names[0]]
}

// serviceFor finds the Service whose selector picks Deployment d, and checks every port.
func (s kubeSet) serviceFor(t *testing.T, d *appsv1.Deployment) *corev1.Service {
	t.Helper()
	var found *corev1.Service
	for _, svc := range s.services {
		if labelsMatch(svc.Spec.Selector, d.Spec.Template.Labels) {
			if found != nil {
				t.Errorf("two Services select Deployment %s", d.Name)
			}
			found = svc
		}
	}
	if found == nil {
		t.Fatalf("no Service selects Deployment %s", d.Name)
	}
	return found
}

func servicePort(t *testing.T, svc *corev1.Service, name string, pod corev1.PodSpec) (port, target int32) {
	t.Helper()
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			tp, ok := containerPort(pod, p.TargetPort)
			if !ok {
				t.Fatalf("Service %s port %s: targetPort %s matches no container port", svc.Name, name, p.TargetPort.String())
			}
			return p.Port, tp
		}
	}
	t.Fatalf("Service %s has no port named %q", svc.Name, name)
	return 0, 0
}

// checkLocustfileMount: -f PATH of a Locust container lies in a ConfigMap mount whose key is
// base(PATH), and that key holds the real locustfile.py.
func checkLocustfileMount(t *testing.T, s kubeSet, d *appsv1.Deployment, locustfile []byte) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	f, ok := flagValue(c.Args, "-f")
	if !ok {
		t.Errorf("%s: no -f locustfile argument: %v", d.Name, c.Args)
		return
	}
	for _, m := range c.VolumeMounts {
		if path.Dir(f) != path.Clean(m.MountPath) {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm, ok := s.configMaps[v.ConfigMap.Name]
			if !ok {
				t.Errorf("%s: volume %s uses ConfigMap %s, which is not defined", d.Name, v.Name, v.ConfigMap.Name)
				return
			}
			got, ok := cm.Data[path.Base(f)]
			if !ok {
				t.Errorf("%s: ConfigMap %s has no key %s for -f %s", d.Name, cm.Name, path.Base(f), f)
				return
			}
			if got != string(locustfile) {
				t.Errorf("ConfigMap %s[%s] differs from locustfile.py: regenerate with DIFYLOAD_UPDATE_MANIFESTS=1 go test ./deploy/ -run TestLocustfileConfigMap", cm.Name, path.Base(f))
			}
			return
		}
	}
	t.Errorf("%s: -f %s is not in a ConfigMap volume mount", d.Name, f)
}

func checkResources(t *testing.T, name string, c corev1.Container) {
	t.Helper()
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okR := c.Resources.Requests[r]
		lim, okL := c.Resources.Limits[r]
		if !okR || !okL {
			t.Errorf("%s: %s request and limit must both be set", name, r)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s above limit %s", name, r, req.String(), lim.String())
		}
	}
}

func TestKubernetesInvariants(t *testing.T) {
	t.Parallel()
	locustfile, err := os.ReadFile(locustfileRel)
	if err != nil {
		t.Fatal(err)
	}
	cliEnv := cliEnvNames(t)
	pyEnv := locustfileEnvNames(t)
	uid := dockerfileUID(t)
	mockKeys := map[string]string{
		"simple-app-key":  difymock.SimpleChatKey,
		"complex-app-key": difymock.ComplexChatKey,
		"dataset-id":      difymock.DefaultDatasetID,
		"dataset-key":     difymock.DatasetKey,
	}
	keyLike := regexp.MustCompile(`^(app|dataset)-[A-Za-z0-9]{8,}$`)

	for _, r := range kubeRenderings() {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			objs, _ := renderDir(t, r.dir)
			s := index(t, objs)

			for name, d := range s.deployments {
				if !labelsMatch(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) || len(d.Spec.Selector.MatchExpressions) > 0 {
					t.Errorf("Deployment %s: selector %v does not select its own pods %v", name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
				}
				for _, c := range d.Spec.Template.Spec.Containers {
					checkResources(t, name+"/"+c.Name, c)
					if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
						t.Errorf("%s/%s: allowPrivilegeEscalation must be false", name, c.Name)
					}
					for _, e := range c.Env {
						if keyLike.MatchString(e.Value) {
							t.Errorf("%s/%s: env %s carries a key in plain text; use a secretKeyRef", name, c.Name, e.Name)
						}
						if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
							ref := e.ValueFrom.SecretKeyRef
							sec, ok := s.secrets[ref.Name]
							if !ok {
								t.Errorf("%s/%s: env %s: Secret %s not defined", name, c.Name, e.Name, ref.Name)
								continue
							}
							_, inString := sec.StringData[ref.Key]
							_, inData := sec.Data[ref.Key]
							if !inString && !inData {
								t.Errorf("%s/%s: env %s: Secret %s has no key %q", name, c.Name, e.Name, ref.Name, ref.Key)
							}
						}
						if imageName(c.Image) == difyloadImage && !cliEnv[e.Name] {
							t.Errorf("%s/%s: env %s is not read by difyload (cmd/difyload)", name, c.Name, e.Name)
						}
						if imageName(c.Image) != difyloadImage && strings.HasPrefix(e.Name, "DIFY_") && !pyEnv[e.Name] {
							t.Errorf("%s/%s: env %s is not read by locustfile.py", name, c.Name, e.Name)
						}
					}
					if imageName(c.Image) == difyloadImage {
						sc := d.Spec.Template.Spec.SecurityContext
						if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != uid {
							t.Errorf("%s: difyload pods must run as non-root uid %d (the Dockerfile's USER)", name, uid)
						}
					}
				}
				for _, v := range d.Spec.Template.Spec.Volumes {
					if v.ConfigMap != nil {
						if _, ok := s.configMaps[v.ConfigMap.Name]; !ok {
							t.Errorf("%s: volume %s: ConfigMap %s not defined", name, v.Name, v.ConfigMap.Name)
						}
					}
				}
			}

			// The master: one replica, never two at once, ports and Service in agreement.
			isMaster := func(c corev1.Container) bool { return hasArg(c.Args, "--master") }
			_, master := s.role(t, "Locust master", isMaster)
			mc := master.Spec.Template.Spec.Containers[0]
			if master.Spec.Replicas == nil || *master.Spec.Replicas != 1 || master.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("master: want replicas 1 and strategy Recreate")
			}
			bind, ok1 := flagValue(mc.Args, "--master-bind-port")
			web, ok2 := flagValue(mc.Args, "--web-port")
			if !ok1 || !ok2 {
				t.Fatalf("master args must set --master-bind-port and --web-port: %v", mc.Args)
			}
			if !hasArg(mc.Args, "--enable-rebalancing") {
				t.Errorf("master: --enable-rebalancing is needed for scaled/HPA workers to get users")
			}
			svc := s.serviceFor(t, master)
			workerPort, bindTarget := servicePort(t, svc, "master", master.Spec.Template.Spec)
			_, webTarget := servicePort(t, svc, "web", master.Spec.Template.Spec)
			if strconv.Itoa(int(bindTarget)) != bind {
				t.Errorf("Service %s port master → container port %d, master binds %s", svc.Name, bindTarget, bind)
			}
			if strconv.Itoa(int(webTarget)) != web {
				t.Errorf("Service %s port web → container port %d, web UI on %s", svc.Name, webTarget, web)
			}
			if probe := mc.ReadinessProbe; probe == nil || probe.HTTPGet == nil {
				t.Errorf("master: want an HTTP readiness probe on the web port")
			} else if p, ok := containerPort(master.Spec.Template.Spec, probe.HTTPGet.Port); !ok || strconv.Itoa(int(p)) != web {
				t.Errorf("master: readiness probe port %s is not the web port %s", probe.HTTPGet.Port.String(), web)
			}
			checkLocustfileMount(t, s, master, locustfile)
			masterEnv := envMap(mc)

			// The Go workers dial the master's Service on its worker port.
			wName, workers := s.role(t, "difyload worker", func(c corev1.Container) bool {
				return imageName(c.Image) == difyloadImage && len(c.Args) > 0 && c.Args[0] == "worker"
			})
			wc := workers.Spec.Template.Spec.Containers[0]
			we := envMap(wc)
			if got := we["LOCUST_MASTER_NODE_HOST"].Value; got != svc.Name {
				t.Errorf("worker: LOCUST_MASTER_NODE_HOST=%q, want the master Service %q", got, svc.Name)
			}
			if got := we["LOCUST_MASTER_NODE_PORT"].Value; got != strconv.Itoa(int(workerPort)) {
				t.Errorf("worker: LOCUST_MASTER_NODE_PORT=%q, want the Service's worker port %d", got, workerPort)
			}
			if got := we["DIFYLOAD_WAIT_FOR_NEW_MASTER"].Value; got != "true" {
				t.Errorf("worker: DIFYLOAD_WAIT_FOR_NEW_MASTER=%q, want true (workers outlive a master restart)", got)
			}
			for _, k := range []string{"DIFY_SIMPLE_APP_KEY", "DIFY_COMPLEX_APP_KEY", "DIFY_DATASET_ID", "DIFY_DATASET_KEY"} {
				if e, ok := we[k]; !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					t.Errorf("worker: %s must come from a Secret", k)
				}
				if e, ok := masterEnv[k]; !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					t.Errorf("master: %s must come from a Secret (locustfile.py sends it to every worker)", k)
				}
			}
			if g := workers.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g <= 5 {
				t.Errorf("worker: terminationGracePeriodSeconds must exceed the worker's 5s stop grace")
			}
			if workers.Spec.Replicas == nil || *workers.Spec.Replicas < 1 {
				t.Errorf("worker: replicas must be set")
			}

			// The HPA scales the Go workers on CPU, which needs CPU requests.
			if len(s.hpas) != 1 {
				t.Errorf("want one HorizontalPodAutoscaler, got %d", len(s.hpas))
			}
			for name, h := range s.hpas {
				ref := h.Spec.ScaleTargetRef
				if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != wName {
					t.Errorf("HPA %s targets %s %s %s, want apps/v1 Deployment %s", name, ref.APIVersion, ref.Kind, ref.Name, wName)
				}
				if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
					t.Errorf("HPA %s: want 1 <= minReplicas <= maxReplicas", name)
				}
				for _, m := range h.Spec.Metrics {
					if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU {
						if _, ok := wc.Resources.Requests[corev1.ResourceCPU]; !ok {
							t.Errorf("HPA %s scales on CPU utilization but the worker has no CPU request", name)
						}
					}
				}
			}

			// The Secret: the mock's keys as clearly marked examples, every key used.
			if len(s.secrets) != 1 {
				t.Fatalf("want one Secret, got %d", len(s.secrets))
			}
			for name, sec := range s.secrets {
				if !strings.Contains(sec.Annotations["difyload.dev/example-values"], "mock") {
					t.Errorf("Secret %s: must be marked as example values (annotation difyload.dev/example-values)", name)
				}
				if !reflect.DeepEqual(sec.StringData, mockKeys) {
					t.Errorf("Secret %s: example values %v, want the mock's keys %v", name, sec.StringData, mockKeys)
				}
				for key := range sec.StringData {
					used := false
					for _, d := range s.deployments {
						for _, c := range d.Spec.Template.Spec.Containers {
							for _, e := range c.Env {
								if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == name && e.ValueFrom.SecretKeyRef.Key == key {
									used = true
								}
							}
						}
					}
					if !used {
						t.Errorf("Secret %s: key %s is used by no container", name, key)
					}
				}
			}

			// Python workers (optional) run the master's image and locustfile.
			for name, d := range s.deployments {
				c := d.Spec.Template.Spec.Containers[0]
				if !hasArg(c.Args, "--worker") {
					continue
				}
				if c.Image != mc.Image {
					t.Errorf("%s: image %s, want the master's %s (a Python worker must run the master's Locust version)", name, c.Image, mc.Image)
				}
				if h, _ := flagValue(c.Args, "--master-host"); h != svc.Name {
					t.Errorf("%s: --master-host=%s, want %s", name, h, svc.Name)
				}
				if p, _ := flagValue(c.Args, "--master-port"); p != strconv.Itoa(int(workerPort)) {
					t.Errorf("%s: --master-port=%s, want %d", name, p, workerPort)
				}
				checkLocustfileMount(t, s, d, locustfile)
			}

			// Where the users go.
			host := masterEnv["LOCUST_HOST"].Value
			if !r.withMock {
				if !strings.HasPrefix(host, "https://") {
					t.Errorf("base: LOCUST_HOST=%q, want a Dify https URL", host)
				}
				return
			}
			_, mock := s.role(t, "mock", func(c corev1.Container) bool {
				return imageName(c.Image) == difyloadImage && len(c.Args) > 0 && c.Args[0] == "mock"
			})
			mkc := mock.Spec.Template.Spec.Containers[0]
			if mkc.Image != wc.Image {
				t.Errorf("mock image %s differs from the worker's %s", mkc.Image, wc.Image)
			}
			me := envMap(mkc)
			addr := me["DIFYLOAD_MOCK_ADDR"].Value
			host0, port0, ok := strings.Cut(addr, ":")
			if !ok || host0 != "0.0.0.0" || me["DIFYLOAD_MOCK_ALLOW_NON_LOOPBACK"].Value != "true" {
				t.Errorf("mock: must listen on 0.0.0.0 with DIFYLOAD_MOCK_ALLOW_NON_LOOPBACK=true, got %q", addr)
			}
			msvc := s.serviceFor(t, mock)
			mport, mtarget := servicePort(t, msvc, "http", mock.Spec.Template.Spec)
			if strconv.Itoa(int(mtarget)) != port0 {
				t.Errorf("mock Service → container port %d, mock listens on %s", mtarget, port0)
			}
			if want := fmt.Sprintf("http://%s:%d", msvc.Name, mport); host != want {
				t.Errorf("master LOCUST_HOST=%q, want the mock %q", host, want)
			}
		})
	}
}

// moduleFile is a Python module shipped beside locustfile.py (difyload_*.py), which it imports.
type moduleFile struct {
	name string
	data []byte
}

// locustModules reads the difyload_*.py modules beside locustfile.py, sorted by name.
func locustModules(t *testing.T) []moduleFile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(filepath.Dir(locustfileRel), "difyload_*.py"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	var out []moduleFile
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, moduleFile{filepath.Base(p), b})
	}
	return out
}

// configMapYAML renders the locustfile ConfigMap: a literal block of each file's exact bytes,
// locustfile.py first, then the modules it imports.
func configMapYAML(src []byte, modules ...moduleFile) ([]byte, error) {
	var b strings.Builder
	b.WriteString(`# GENERATED from ../../../locustfile.py (and ../../../difyload_*.py) — do not edit. The master
# and the Python workers mount it at /mnt/locust. Regenerate after changing those files:
#   DIFYLOAD_UPDATE_MANIFESTS=1 go test ./deploy/ -run TestLocustfileConfigMap
apiVersion: v1
kind: ConfigMap
metadata:
  name: difyload-locustfile
  labels:
    app.kubernetes.io/name: difyload
data:
`)
	for _, f := range append([]moduleFile{{"locustfile.py", src}}, modules...) {
		if err := blockScalar(&b, f.name, string(f.data)); err != nil {
			return nil, err
		}
	}
	return []byte(b.String()), nil
}

// blockScalar writes `  key: |2…` and text verbatim as a YAML literal block.
func blockScalar(b *strings.Builder, key, text string) error {
	if strings.ContainsAny(text, "\t\r") {
		return fmt.Errorf("%s has tabs or CRs: a YAML block scalar cannot hold it verbatim", key)
	}
	// An explicit indentation indicator (content 2 spaces deeper than the key) keeps lines
	// that start with spaces verbatim; the chomping indicator keeps the trailing newlines.
	chomp := "|2"
	switch {
	case !strings.HasSuffix(text, "\n"):
		chomp = "|2-"
	case strings.HasSuffix(text, "\n\n"):
		chomp = "|2+"
	}
	b.WriteString("  " + key + ": " + chomp + "\n")
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for _, line := range lines {
		if line == "\n" {
			b.WriteString("\n")
			continue
		}
		b.WriteString("    " + line)
	}
	if !strings.HasSuffix(text, "\n") {
		b.WriteString("\n")
	}
	return nil
}

func TestLocustfileConfigMap(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(locustfileRel)
	if err != nil {
		t.Fatal(err)
	}
	modules := locustModules(t)
	file := filepath.Join(kubeDir, "base", "locustfile-configmap.yaml")
	if os.Getenv("DIFYLOAD_UPDATE_MANIFESTS") == "1" {
		out, err := configMapYAML(src, modules...)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := decodeFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cm, ok := objs[0].obj.(*corev1.ConfigMap)
	if !ok || len(objs) != 1 {
		t.Fatalf("%s: want one ConfigMap", file)
	}
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := map[string]string{"locustfile.py": string(src)}
	for _, m := range modules {
		want[m.name] = string(m.data)
	}
	wantKeys := make([]string, 0, len(want))
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	sort.Strings(wantKeys)
	if !reflect.DeepEqual(keys, wantKeys) || len(cm.BinaryData) > 0 {
		t.Fatalf("%s: want exactly the keys %v, got %v", file, wantKeys, keys)
	}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Fatalf("%s[%s] differs from %s byte for byte: regenerate with DIFYLOAD_UPDATE_MANIFESTS=1 go test ./deploy/ -run TestLocustfileConfigMap", file, k, k)
		}
	}
}

// The generator must round-trip awkward content exactly, not just today's locustfile.py.
func TestConfigMapYAMLRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []string{
		"a\n",
		"a\n\n",
		"a\n\n\n",
		"no newline",
		"  leading spaces\nx: y\n# comment\n",
		"\nfirst line empty\n",
		"中文 — unicode\n\n    indented\n",
		"trailing spaces   \nkey: |\n  --- not a document\n",
	}
	for _, src := range tests {
		out, err := configMapYAML([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeFile(writeTemp(t, out))
		if err != nil {
			t.Fatalf("%q: %v\n%s", src, err, out)
		}
		if got := objs[0].obj.(*corev1.ConfigMap).Data["locustfile.py"]; got != src {
			t.Errorf("round trip of %q gave %q\n%s", src, got, out)
		}
	}
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
