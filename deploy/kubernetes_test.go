package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/defaults"
	"github.com/pelletier/go-toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/cgibox/cgibox/config"
)

// The manifests are read as the API server reads them: each YAML document
// made JSON and decoded into its k8s.io/api type case-sensitively, with
// unknown and duplicate fields errors (what `kubectl apply` does with its
// default --validate=strict). Then the tests hold them to what cgibox needs
// and what Kubernetes checks only at admission.

const (
	manifestDir = "kubernetes"
	namespace   = "cgibox"
	// gatewayName is the DaemonSet's container that runs cgibox.
	gatewayName = "cgibox"
	// containerdRoot is where the node's containerd keeps its snapshots,
	// which cgibox mounts itself to run a site in a user namespace.
	containerdRoot = "/var/lib/containerd"
)

// variants are files that replace others of the kustomization's resources:
// privileged.yaml is the DaemonSet and ConfigMap for quotas and user
// namespaces.
var variants = map[string][]string{
	"privileged.yaml": {"configmap.yaml", "daemonset.yaml"},
}

type typeKey struct{ apiVersion, kind string }

// kinds are the objects the manifests may hold, each with its type. A
// document of another kind fails: add the kind here with its type.
var kinds = map[typeKey]func() any{
	{"v1", "Namespace"}:                                  func() any { return &corev1.Namespace{} },
	{"v1", "ServiceAccount"}:                             func() any { return &corev1.ServiceAccount{} },
	{"v1", "ConfigMap"}:                                  func() any { return &corev1.ConfigMap{} },
	{"v1", "Service"}:                                    func() any { return &corev1.Service{} },
	{"apps/v1", "DaemonSet"}:                             func() any { return &appsv1.DaemonSet{} },
	{"policy/v1", "PodDisruptionBudget"}:                 func() any { return &policyv1.PodDisruptionBudget{} },
	{"kustomize.config.k8s.io/v1beta1", "Kustomization"}: func() any { return &kustomization{} },
}

// kustomization is the part of kustomize's Kustomization these manifests
// use; it is decoded as strictly, so a field added to kustomization.yaml
// must be added here too.
type kustomization struct {
	metav1.TypeMeta `json:",inline"`
	Resources       []string `json:"resources"`
}

// decode decodes one YAML document strictly into its type. A document with
// nothing but comments is nil.
func decode(doc []byte) (any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	if s := string(bytes.TrimSpace(j)); s == "null" || s == "" {
		return nil, nil
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return nil, fmt.Errorf("not an object: %w", err)
	}
	newObj, ok := kinds[typeKey{tm.APIVersion, tm.Kind}]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q, kind %q: not a kind this test knows", tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, err
	}
	if len(strict) > 0 {
		return nil, errors.Join(strict...)
	}
	return obj, nil
}

// manifest is one object of one file.
type manifest struct {
	file string
	doc  int // the document's index in the file
	obj  any
}

func (m manifest) String() string { return fmt.Sprintf("%s[%d]", m.file, m.doc) }

// id names the object as the API server does, for duplicates.
func (m manifest) id() string {
	meta := objectMeta(m.obj)
	return fmt.Sprintf("%T %s/%s", m.obj, meta.Namespace, meta.Name)
}

func objectMeta(obj any) *metav1.ObjectMeta {
	switch o := obj.(type) {
	case *corev1.Namespace:
		return &o.ObjectMeta
	case *corev1.ServiceAccount:
		return &o.ObjectMeta
	case *corev1.ConfigMap:
		return &o.ObjectMeta
	case *corev1.Service:
		return &o.ObjectMeta
	case *appsv1.DaemonSet:
		return &o.ObjectMeta
	case *policyv1.PodDisruptionBudget:
		return &o.ObjectMeta
	}
	return &metav1.ObjectMeta{}
}

// readFile splits a file into its YAML documents and decodes each.
func readFile(path string) ([]manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var out []manifest
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		obj, err := decode(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if obj != nil {
			out = append(out, manifest{file: filepath.Base(path), doc: i, obj: obj})
		}
	}
}

// readAll reads every file of the manifest directory, by name.
func readAll(t *testing.T) map[string][]manifest {
	t.Helper()
	entries, err := os.ReadDir(manifestDir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]manifest{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			t.Errorf("%s/%s: only .yaml files belong here (this test reads no other)", manifestDir, e.Name())
			continue
		}
		ms, err := readFile(filepath.Join(manifestDir, e.Name()))
		if err != nil {
			t.Error(err)
			continue
		}
		if len(ms) == 0 {
			t.Errorf("%s: no object", e.Name())
		}
		files[e.Name()] = ms
	}
	if t.Failed() {
		t.FailNow()
	}
	return files
}

// deployment is what one `kubectl apply -k` creates: the kustomization's
// resources, or those with a variant in place of the files it replaces.
type deployment struct {
	name    string
	objects []manifest
}

func deployments(t *testing.T) []deployment {
	t.Helper()
	files := readAll(t)
	k := kustomizationOf(t, files)
	var out []deployment
	collect := func(name string, resources []string) {
		d := deployment{name: name}
		for _, r := range resources {
			d.objects = append(d.objects, files[r]...)
		}
		out = append(out, d)
	}
	collect("default", k.Resources)
	for _, v := range sortedKeys(variants) {
		var rs []string
		for _, r := range k.Resources {
			if !slices.Contains(variants[v], r) {
				rs = append(rs, r)
			}
		}
		collect(strings.TrimSuffix(v, ".yaml"), append(rs, v))
	}
	return out
}

func kustomizationOf(t *testing.T, files map[string][]manifest) *kustomization {
	t.Helper()
	ms := files["kustomization.yaml"]
	if len(ms) != 1 {
		t.Fatalf("kustomization.yaml: want one Kustomization, have %d documents", len(ms))
	}
	k, ok := ms[0].obj.(*kustomization)
	if !ok {
		t.Fatalf("kustomization.yaml holds a %T", ms[0].obj)
	}
	return k
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func objectsOf[T any](d deployment) []T {
	var out []T
	for _, m := range d.objects {
		if o, ok := m.obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

func (d deployment) daemonSet(t *testing.T) *appsv1.DaemonSet {
	t.Helper()
	ds := objectsOf[*appsv1.DaemonSet](d)
	if len(ds) != 1 {
		t.Fatalf("want one DaemonSet, have %d", len(ds))
	}
	return ds[0]
}

func gateway(t *testing.T, ds *appsv1.DaemonSet) *corev1.Container {
	t.Helper()
	for i, c := range ds.Spec.Template.Spec.Containers {
		if c.Name == gatewayName {
			return &ds.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatalf("DaemonSet %s has no container %q", ds.Name, gatewayName)
	return nil
}

// forEach runs f for every deployment, as a subtest.
func forEach(t *testing.T, f func(t *testing.T, d deployment)) {
	for _, d := range deployments(t) {
		t.Run(d.name, func(t *testing.T) { f(t, d) })
	}
}

// flagValue returns the value of -name or --name in args (as "--name v" or
// "--name=v"), as cgibox's flag parsing reads it.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--" {
			break
		}
		for _, dash := range []string{"-", "--"} {
			if a == dash+name && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, dash+name+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

func commandLine(c *corev1.Container) []string { return append(slices.Clone(c.Command), c.Args...) }

func containerPorts(c *corev1.Container) map[string]int32 {
	ports := map[string]int32{}
	for _, p := range c.Ports {
		if p.Name != "" {
			ports[p.Name] = p.ContainerPort
		}
	}
	return ports
}

// hostMount is a hostPath volume as one container mounts it.
type hostMount struct {
	path        string
	readOnly    bool
	propagation corev1.MountPropagationMode
}

// hostMounts returns the hostPath mounts of c, failing each one whose
// mountPath is not its node path: cgibox hands these paths to the node's
// containerd, which finds them on the node.
func hostMounts(t *testing.T, spec *corev1.PodSpec, c *corev1.Container) []hostMount {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	var out []hostMount
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Errorf("container %s mounts %q, which is no volume of the pod", c.Name, m.Name)
			continue
		}
		if v.HostPath == nil {
			continue
		}
		if p := filepath.Clean(v.HostPath.Path); m.MountPath != p || m.SubPath != "" || m.SubPathExpr != "" {
			t.Errorf("container %s mounts the node's %s at %s (subPath %q): cgibox gives containerd the path it sees, so it must be the node's", c.Name, v.HostPath.Path, m.MountPath, m.SubPath+m.SubPathExpr)
			continue
		}
		hm := hostMount{path: m.MountPath, readOnly: m.ReadOnly}
		if m.MountPropagation != nil {
			hm.propagation = *m.MountPropagation
		}
		out = append(out, hm)
	}
	return out
}

// under returns the mount that holds the node path p, the deepest one.
func under(mounts []hostMount, p string) (hostMount, bool) {
	var best hostMount
	found := false
	for _, m := range mounts {
		if within(p, m.path) && (!found || len(m.path) > len(best.path)) {
			best, found = m, true
		}
	}
	return best, found
}

func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && filepath.IsAbs(p) && rel != ".." && !strings.HasPrefix(rel, "../")
}

func privileged(c *corev1.Container) bool {
	return c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
}

// TestDecoderIsStrict holds decode to the strictness the manifests rely
// on: if it ever lets these through, the tests below prove nothing.
func TestDecoderIsStrict(t *testing.T) {
	const pod = `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      %s
      containers:
        - name: c
          image: i
          %s
`
	cases := []struct {
		name    string
		doc     string
		wantErr bool
	}{
		{"valid", fmt.Sprintf(pod, "hostname: h", "ports: [{name: http, containerPort: 8000}]"), false},
		{"only comments", "# nothing\n", false},
		{"misspelled pod field", fmt.Sprintf(pod, "terminationGracePeriod: 45", ""), true},
		{"misspelled container field", fmt.Sprintf(pod, "", "volumeMounts: [{name: v, mountPth: /x}]"), true},
		{"field in the wrong case", fmt.Sprintf(pod, "", "volumeMounts: [{name: v, mountpath: /x}]"), true},
		{"field at the wrong level", fmt.Sprintf(pod, "", "hostPath: {path: /x}"), true},
		{"wrong type", fmt.Sprintf(pod, "", "ports: [{name: http, containerPort: \"8000\"}]"), true},
		{"duplicate key", fmt.Sprintf(pod, "hostname: a\n      hostname: b", ""), true},
		{"unknown kind", "apiVersion: apps/v1\nkind: DaemonSett\nmetadata: {name: x}\n", true},
		{"known kind, other version", "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: x}\n", true},
		{"kustomization field this test does not know", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresourses: [a.yaml]\n", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode([]byte(tc.doc))
			t.Logf("decode: %v", err)
			if (err != nil) != tc.wantErr {
				t.Errorf("decode(%s)\n= error %v, want error: %v", tc.doc, err, tc.wantErr)
			}
		})
	}
}

// TestManifestsDecodeStrictly decodes every document of every file and
// checks what every object shares.
func TestManifestsDecodeStrictly(t *testing.T) {
	files := readAll(t)
	for _, name := range sortedKeys(files) {
		for _, m := range files[name] {
			if _, ok := m.obj.(*kustomization); ok {
				continue
			}
			meta := objectMeta(m.obj)
			if meta.Name == "" {
				t.Errorf("%s: %T without a name", m, m.obj)
			}
			if got := meta.Labels["app.kubernetes.io/name"]; got != "cgibox" {
				t.Errorf("%s: label app.kubernetes.io/name is %q, want cgibox", m, got)
			}
			_, isNamespace := m.obj.(*corev1.Namespace)
			switch {
			case isNamespace && meta.Name != namespace:
				t.Errorf("%s: namespace %q, want %q", m, meta.Name, namespace)
			case !isNamespace && meta.Namespace != namespace:
				t.Errorf("%s: %T %s in namespace %q, want %q", m, m.obj, meta.Name, meta.Namespace, namespace)
			}
		}
	}
}

// TestKustomization checks that kustomization.yaml names every file there
// is, each once, and that each variant can stand in for the files it
// replaces: the same objects, no more, no fewer.
func TestKustomization(t *testing.T) {
	files := readAll(t)
	k := kustomizationOf(t, files)
	listed := map[string]bool{}
	for _, r := range k.Resources {
		if _, ok := files[r]; !ok {
			t.Errorf("kustomization.yaml lists %s, which is not in %s/", r, manifestDir)
		}
		if listed[r] {
			t.Errorf("kustomization.yaml lists %s twice", r)
		}
		listed[r] = true
	}
	for name := range files {
		if _, isVariant := variants[name]; name != "kustomization.yaml" && !listed[name] && !isVariant {
			t.Errorf("%s is neither in kustomization.yaml nor a variant of a file that is", name)
		}
	}
	kindName := func(ms []manifest) []string {
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.id())
		}
		sort.Strings(ids)
		return ids
	}
	for _, v := range sortedKeys(variants) {
		var replaced []manifest
		for _, r := range variants[v] {
			if !listed[r] {
				t.Errorf("variant %s replaces %s, which kustomization.yaml does not list", v, r)
			}
			replaced = append(replaced, files[r]...)
		}
		if got, want := kindName(files[v]), kindName(replaced); !slices.Equal(got, want) {
			t.Errorf("variant %s holds %q, want the objects of %v: %q", v, got, variants[v], want)
		}
	}
	for _, d := range deployments(t) {
		seen := map[string]manifest{}
		for _, m := range d.objects {
			if other, dup := seen[m.id()]; dup {
				t.Errorf("%s: %s is in %s and %s", d.name, m.id(), other, m)
			}
			seen[m.id()] = m
		}
		if n := len(objectsOf[*corev1.Namespace](d)); n != 1 {
			t.Errorf("%s: %d Namespaces, want 1", d.name, n)
		}
	}
}

// TestProbes checks that the kubelet asks cgibox's admin listener, on the
// port named admin, the questions it answers: /healthz and /readyz.
func TestProbes(t *testing.T) {
	forEach(t, func(t *testing.T, d deployment) {
		c := gateway(t, d.daemonSet(t))
		admin, ok := containerPorts(c)["admin"]
		if !ok {
			t.Fatalf("container %s has no port named admin", c.Name)
		}
		check := func(kind string, p *corev1.Probe, path string) {
			t.Helper()
			switch {
			case p == nil:
				t.Errorf("no %s probe", kind)
			case p.HTTPGet == nil:
				t.Errorf("%s probe: not an HTTP GET", kind)
			case p.HTTPGet.Path != path || p.HTTPGet.Port != intstr.FromString("admin"):
				t.Errorf("%s probe: GET %s on port %s, want %s on port admin", kind, p.HTTPGet.Path, p.HTTPGet.Port.String(), path)
			}
		}
		check("liveness", c.LivenessProbe, "/healthz")
		check("readiness", c.ReadinessProbe, "/readyz")
		if c.StartupProbe != nil {
			check("startup", c.StartupProbe, "/healthz")
		}
		addr, ok := flagValue(commandLine(c), "admin")
		if !ok {
			t.Fatalf("%q: no --admin flag: cgibox would not serve the probes", commandLine(c))
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port != strconv.Itoa(int(admin)) {
			t.Errorf("--admin %s: want port %d, the container's admin port", addr, admin)
		}
	})
}

// TestHostPaths checks that every path cgibox gives the node's containerd
// is the node's own: the hostPath mounts, the socket and its FIFO
// directory, and cgibox's executable, beside which it finds its launcher.
func TestHostPaths(t *testing.T) {
	forEach(t, func(t *testing.T, d deployment) {
		ds := d.daemonSet(t)
		spec := &ds.Spec.Template.Spec
		for i := range spec.InitContainers {
			hostMounts(t, spec, &spec.InitContainers[i])
		}
		c := gateway(t, ds)
		mounts := hostMounts(t, spec, c)
		need := func(what, p string, writable bool) {
			t.Helper()
			m, ok := under(mounts, p)
			switch {
			case !ok:
				t.Errorf("%s %s is not below a hostPath mounted at its node path", what, p)
			case writable && m.readOnly:
				t.Errorf("%s %s is below the read-only mount %s", what, p, m.path)
			}
		}
		// The client makes its FIFOs there, the shims open them by path.
		need("containerd's FIFO directory", defaults.DefaultFIFODir, true)
		if len(c.Command) == 0 {
			t.Fatal("no command: cgibox must run from a hostPath, beside its launcher")
		}
		exe := c.Command[0]
		need("cgibox's executable", exe, false)
		// The init container puts it and the launcher there.
		bin := filepath.Dir(exe)
		installed := false
		for i := range spec.InitContainers {
			ic := &spec.InitContainers[i]
			script := strings.Join(commandLine(ic), " ")
			if _, ok := under(hostMounts(t, spec, ic), bin); ok && strings.Contains(script, bin) && strings.Contains(script, "cgibox-launch") {
				installed = true
			}
		}
		if !installed {
			t.Errorf("no init container installs cgibox and cgibox-launch in %s", bin)
		}
	})
}

// sites is a DaemonSet's sites.toml resolved by cgibox's config package,
// with the node paths moved below a temporary directory where the roots
// exist, and the server settings the flags override.
type sites struct {
	cfg        *config.Config
	relocated  string // the prefix added to node paths
	dataDir    string // node paths
	containerd string
	drain      time.Duration
}

func (s *sites) nodePath(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, s.relocated)
	return rest, ok && strings.HasPrefix(rest, "/")
}

// sitesOf finds the file --config names in the ConfigMap mounted there,
// checks it with config.Parse, and resolves it.
func sitesOf(t *testing.T, d deployment) *sites {
	t.Helper()
	ds := d.daemonSet(t)
	spec := &ds.Spec.Template.Spec
	c := gateway(t, ds)
	args := commandLine(c)
	file, ok := flagValue(args, "config")
	if !ok || !filepath.IsAbs(file) {
		t.Fatalf("%q: want --config with an absolute path", args)
	}
	for _, f := range []string{"b", "bind", "d", "directory"} {
		if _, ok := flagValue(args, f); ok {
			t.Fatalf("%q: -%s: this test reads listen and roots from sites.toml only", args, f)
		}
	}
	var src string
	found := false
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil || filepath.Dir(file) != filepath.Clean(m.MountPath) {
				continue
			}
			if m.SubPath != "" {
				t.Errorf("%s: a subPath mount never sees the ConfigMap's updates", m.MountPath)
			}
			for _, cm := range objectsOf[*corev1.ConfigMap](d) {
				if cm.Name == v.ConfigMap.Name {
					src, found = cm.Data[filepath.Base(file)]
				}
			}
		}
	}
	if !found {
		t.Fatalf("--config %s: no ConfigMap key mounted there", file)
	}

	// As cgibox reads it on a node: the roots are not on this machine,
	// and the only errors may be about them.
	if _, err := config.Parse(file, []byte(src)); err != nil {
		var es config.Errors
		if !errors.As(err, &es) {
			t.Fatalf("%s: %v", file, err)
		}
		for _, e := range es {
			if !strings.HasSuffix(e.Key, ".root") {
				t.Errorf("sites.toml: %v", e)
			}
		}
	}

	// Resolved, with the DaemonSet's node paths below a directory where
	// the roots can be made.
	s := &sites{relocated: t.TempDir()}
	var hostPaths []string
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths = append(hostPaths, filepath.Clean(v.HostPath.Path))
		}
	}
	sort.Slice(hostPaths, func(i, j int) bool { return len(hostPaths[i]) > len(hostPaths[j]) })
	text := src
	for _, p := range hostPaths {
		text = strings.ReplaceAll(text, `"`+p+`/`, `"`+s.relocated+p+`/`)
		text = strings.ReplaceAll(text, `"`+p+`"`, `"`+s.relocated+p+`"`)
	}
	var roots struct {
		Site []struct {
			Root string `toml:"root"`
		} `toml:"site"`
	}
	if err := toml.Unmarshal([]byte(text), &roots); err != nil {
		t.Fatalf("sites.toml: %v", err)
	}
	for _, site := range roots.Site {
		if _, ok := s.nodePath(site.Root); !ok {
			t.Fatalf("sites.toml: root %q is not below a hostPath of the DaemonSet", site.Root)
		}
		if err := os.MkdirAll(site.Root, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse(filepath.Join(s.relocated, file), []byte(text))
	if err != nil {
		t.Fatalf("sites.toml, its roots made: %v", err)
	}
	s.cfg = cfg

	s.dataDir, s.containerd, s.drain = cfg.Server.DataDir, cfg.Server.Containerd, cfg.Server.DrainTimeout
	if p, ok := s.nodePath(s.dataDir); ok {
		s.dataDir = p
	}
	if v, ok := flagValue(args, "data-dir"); ok {
		s.dataDir = v
	}
	if v, ok := flagValue(args, "containerd"); ok {
		s.containerd = v
	}
	if v, ok := flagValue(args, "drain-timeout"); ok {
		if s.drain, err = time.ParseDuration(v); err != nil {
			t.Fatalf("--drain-timeout %s: %v", v, err)
		}
	}
	return s
}

// TestSitesConfig checks the ConfigMap's sites.toml with cgibox's own
// config package, and that every path it names is one the node's
// containerd can use: below a hostPath at its node path, writable where
// cgibox writes.
func TestSitesConfig(t *testing.T) {
	forEach(t, func(t *testing.T, d deployment) {
		ds := d.daemonSet(t)
		c := gateway(t, ds)
		mounts := hostMounts(t, &ds.Spec.Template.Spec, c)
		s := sitesOf(t, d)
		need := func(what, p string, writable bool) (hostMount, bool) {
			t.Helper()
			m, ok := under(mounts, p)
			switch {
			case !ok:
				t.Errorf("%s %s is not below a hostPath mounted at its node path", what, p)
			case writable && m.readOnly:
				t.Errorf("%s %s is below the read-only mount %s", what, p, m.path)
			}
			return m, ok
		}
		node := func(what, p string) string {
			t.Helper()
			np, ok := s.nodePath(p)
			if !ok {
				t.Errorf("%s %s is not below a hostPath of the DaemonSet", what, p)
			}
			return np
		}

		if s.containerd == "auto" || s.containerd == "private" || !filepath.IsAbs(s.containerd) {
			t.Errorf("containerd %q: want the node's socket, by path", s.containerd)
		} else {
			need("the containerd socket", s.containerd, true)
		}
		need("the state directory", s.dataDir, true)

		http, ok := containerPorts(c)["http"]
		if !ok {
			t.Errorf("container %s has no port named http", c.Name)
		}
		for _, l := range s.cfg.Server.Listen {
			host, port, _ := net.SplitHostPort(l)
			if host != "" && host != "0.0.0.0" && host != "::" {
				t.Errorf("listen %q: the Service reaches the pod's address, not %s", l, host)
			}
			if port != strconv.Itoa(int(http)) {
				t.Errorf("listen %q: want the container's http port %d", l, http)
			}
		}

		quotas := false
		for _, site := range s.cfg.Sites {
			need("site "+site.Name+"'s root", node("site "+site.Name+"'s root", site.Root), false)
			if site.DataDir == "" {
				continue
			}
			m, ok := need("site "+site.Name+"'s data_dir", node("site "+site.Name+"'s data_dir", site.DataDir), true)
			if site.DataQuota == 0 {
				continue
			}
			quotas = true
			// The loop mount cgibox makes on it must reach the node's runc.
			if ok && m.propagation != corev1.MountPropagationBidirectional {
				t.Errorf("site %s has a data_quota, but %s is mounted without Bidirectional propagation: runc would not see the quota's mount", site.Name, m.path)
			}
		}

		userns := s.cfg.Server.UserNamespaces != "off"
		if !privileged(c) {
			if userns {
				t.Errorf("user_namespaces = %q in an unprivileged pod: cgibox cannot mount the snapshots a user namespace needs, and every CGI request would fail", s.cfg.Server.UserNamespaces)
			}
			if quotas {
				t.Error("a data_quota in an unprivileged pod: no loop devices, and no mount that reaches the node")
			}
			return
		}
		if userns {
			need("containerd's root (the snapshots cgibox mounts for user namespaces)", containerdRoot, true)
		}
		if quotas {
			// Loop devices are made on demand: the node's /dev, live.
			if m, ok := under(mounts, "/dev/loop-control"); !ok || m.path != "/dev" {
				t.Error("data quotas without the node's /dev mounted at /dev: the loop devices made after the start would be missing")
			}
		}
	})
}

// TestGracePeriod checks that the kubelet's SIGKILL comes after cgibox's
// drain: the preStop pause, then SIGTERM, then at most the drain timeout.
func TestGracePeriod(t *testing.T) {
	forEach(t, func(t *testing.T, d deployment) {
		ds := d.daemonSet(t)
		s := sitesOf(t, d)
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if g := ds.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
			grace = *g
		}
		var pause int64
		if l := gateway(t, ds).Lifecycle; l != nil && l.PreStop != nil {
			switch {
			case l.PreStop.Sleep != nil:
				pause = l.PreStop.Sleep.Seconds
			default:
				t.Errorf("a preStop hook that is not a sleep: this test cannot tell how long it takes")
			}
		}
		if time.Duration(grace)*time.Second <= time.Duration(pause)*time.Second+s.drain {
			t.Errorf("terminationGracePeriodSeconds %d is not above the preStop pause %ds plus the drain timeout %v", grace, pause, s.drain)
		}
	})
}

// TestSelectors checks that the DaemonSet's pods are the ones its own
// selector, the Services and the PodDisruptionBudget select, and that the
// Services' ports are the container's.
func TestSelectors(t *testing.T) {
	forEach(t, func(t *testing.T, d deployment) {
		ds := d.daemonSet(t)
		pods := labels.Set(ds.Spec.Template.Labels)
		selects := func(what string, sel *metav1.LabelSelector) {
			t.Helper()
			s, err := metav1.LabelSelectorAsSelector(sel)
			switch {
			case err != nil:
				t.Errorf("%s: %v", what, err)
			case sel == nil || s.Empty():
				t.Errorf("%s selects every pod of the namespace", what)
			case !s.Matches(pods):
				t.Errorf("%s (%s) does not select the DaemonSet's pods %v", what, s, pods)
			}
		}
		selects("the DaemonSet's selector", ds.Spec.Selector)

		c := gateway(t, ds)
		ports := containerPorts(c)
		numbers := map[int32]bool{}
		for _, p := range ports {
			numbers[p] = true
		}
		services := objectsOf[*corev1.Service](d)
		if len(services) == 0 {
			t.Error("no Service")
		}
		for _, svc := range services {
			selects("Service "+svc.Name, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
			for _, p := range svc.Spec.Ports {
				tp := p.TargetPort
				if tp.Type == intstr.String && ports[tp.StrVal] == 0 || tp.Type == intstr.Int && !numbers[tp.IntVal] {
					t.Errorf("Service %s port %s: target %s is no port of container %s", svc.Name, p.Name, tp.String(), c.Name)
				}
			}
			if v, ok := svc.Annotations["prometheus.io/port"]; ok && v != strconv.Itoa(int(ports["admin"])) {
				t.Errorf("Service %s: prometheus.io/port %s, want the admin port %d", svc.Name, v, ports["admin"])
			}
		}
		pdbs := objectsOf[*policyv1.PodDisruptionBudget](d)
		if len(pdbs) != 1 {
			t.Errorf("%d PodDisruptionBudgets, want 1", len(pdbs))
		}
		for _, pdb := range pdbs {
			selects("PodDisruptionBudget "+pdb.Name, pdb.Spec.Selector)
			if pdb.Spec.MaxUnavailable == nil {
				t.Errorf("PodDisruptionBudget %s: want maxUnavailable (a DaemonSet's pod count is the node count)", pdb.Name)
			}
		}
	})
}

// TestSecurityContext checks the rules Kubernetes applies only when it
// admits a pod, which decoding does not see.
func TestSecurityContext(t *testing.T) {
	forEach(t, func(t *testing.T, d deployment) {
		ds := d.daemonSet(t)
		spec := &ds.Spec.Template.Spec
		all := append(slices.Clone(spec.InitContainers), spec.Containers...)
		for i := range all {
			c := &all[i]
			sc := c.SecurityContext
			if privileged(c) && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
				t.Errorf("container %s: privileged with allowPrivilegeEscalation false is refused", c.Name)
			}
			for _, m := range c.VolumeMounts {
				if m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional && !privileged(c) {
					t.Errorf("container %s: Bidirectional propagation on %s is allowed in privileged containers only", c.Name, m.MountPath)
				}
			}
			if !privileged(c) && (sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL")) {
				t.Errorf("container %s: unprivileged, but it keeps the runtime's default capabilities: drop ALL and add what it needs", c.Name)
			}
		}
		hostPath := false
		for _, v := range spec.Volumes {
			hostPath = hostPath || v.HostPath != nil
		}
		for _, ns := range objectsOf[*corev1.Namespace](d) {
			if level := ns.Labels["pod-security.kubernetes.io/enforce"]; hostPath && level != "privileged" {
				t.Errorf("Namespace %s: pod-security enforce %q refuses hostPath volumes: want privileged", ns.Name, level)
			}
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Error("the pods get a service account token: cgibox never talks to the API")
		}
	})
}
