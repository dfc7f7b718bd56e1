package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// PoolConfig sizes the pools of prepared containers: per site, image,
// script directory and limits, containers started ahead with the launcher
// waiting for its frame, so that a request only hands over its frame and
// body. Each prepared container still serves exactly one job.
type PoolConfig struct {
	// Max is the most prepared containers one pool holds; 0 turns the
	// pools off (every job starts its container itself).
	Max int
	// Min is how many a pool keeps while idle; 0 lets an idle pool shrink
	// to none (its next job then starts its own container).
	Min int
	// Idle is how long a pool may go without a job before it shrinks by
	// one.
	Idle time.Duration
	// MaxAge is how long a prepared container may wait; older ones are
	// replaced (and so is one whose image has been rebuilt).
	MaxAge time.Duration
	// Total is the most prepared containers across all pools; Total <= 0
	// means no global cap. Counted are those waiting, being started or
	// being deleted (each holds its shim's and launcher's memory until it
	// is gone), and those a running job took, until the job ends (its
	// pool refills then, and no other pool takes the place meanwhile).
	// A pool whose job found it empty while the cap is reached takes one
	// waiting container from the least recently used pool (see victim).
	Total int
}

// DefaultPool is the pool configuration of `cgibox serve`: with 100
// sites, Min alone would keep 100 containers (some 6 MiB each) forever;
// Total keeps the 16 most recently used.
func DefaultPool() PoolConfig {
	return PoolConfig{Max: 4, Min: 1, Total: 16, Idle: 30 * time.Second, MaxAge: 5 * time.Minute}
}

// WithPool enables pools of prepared containers (default: none).
func WithPool(c PoolConfig) Option { return func(cfg *config) { cfg.pool = c } }

// Labels of a container started ahead by a pool: LabelPrepared is "true",
// LabelOwner names the cgibox process it waits for (see ownerLabel).
const (
	LabelPrepared = "cgibox.prepared"
	LabelOwner    = "cgibox.owner"
)

const (
	// poolTick is how often pools are checked for dead, old and stale
	// containers and for idleness.
	poolTick = time.Second
	// imageCheckEvery is how often a pool compares its image's digest.
	imageCheckEvery = 5 * time.Second
	// maxBuilders bounds the containers being prepared at once (across
	// all pools), one per core up to this. One builder on 2 cores refills
	// a container in 100 to 140 ms, too slow for 10 requests/s: the pool
	// ran dry and every third request started its own container (110 ms
	// and more), where a second builder only slows the running scripts by
	// a few ms.
	maxBuilders = 4
	// failureBackoff is how long a pool waits after a failed preparation.
	failureBackoff = 5 * time.Second
)

// poolKey is what a prepared container is made for: everything its spec
// and rootfs depend on.
type poolKey struct {
	site, image, scriptDir, mountPoint, dataDir string
	// users is the job's user range; the zero value, never a valid
	// range (Check refuses host root), stands for none.
	users  UserRange
	limits Limits
}

// keyOf is the pool key of job with its complete limits l.
func keyOf(job Job, l Limits) poolKey {
	k := poolKey{site: job.Site, image: job.Image, scriptDir: job.ScriptDir, mountPoint: job.MountPoint,
		dataDir: job.DataDir, limits: l}
	if job.Users != nil {
		k.users = *job.Users
	}
	return k
}

// userRange is the key's user range, nil for none.
func (k poolKey) userRange() *UserRange {
	if k.users == (UserRange{}) {
		return nil
	}
	u := k.users
	return &u
}

// specConfig is the container policy's parameters for key.
func (m *Manager) specConfig(k poolKey) specConfig {
	return specConfig{Launcher: m.launcher, ScriptDir: k.scriptDir, MountPoint: k.mountPoint,
		DataDir: k.dataDir, Users: k.userRange(), Limits: k.limits}
}

// pool holds the prepared containers of one key.
type pool struct {
	key poolKey

	// guarded by pools.mu
	ready     []*started // oldest first
	preparing int
	target    int
	// taken counts the containers jobs took and have not ended (done);
	// they count against PoolConfig.Total.
	taken int
	// pendingMisses counts the misses whose job has not ended: each may
	// take a container of another pool when the cap stops the refill (see
	// done). A job that missed and then failed to start leaves one
	// behind, for the next job's done.
	pendingMisses int
	// incoming counts the containers of other pools being deleted for
	// this one: their places are this pool's once they are gone.
	incoming int
	lastJob  time.Time // when its last job began
	shrunk   time.Time // when check last lowered target for idleness
	failing  time.Time // no preparations before this
	digest   digest.Digest
	checked  time.Time
	hits     uint64
	misses   uint64
}

// pools are a Manager's pools.
type pools struct {
	m   *Manager
	cfg PoolConfig
	// ctx never ends: a preparation under way when the pools close is
	// finished and then deleted, never cut off between containerd's
	// steps (a cancelled snapshot Prepare can outrun its removal).
	// stop is closed by close.
	ctx  context.Context
	stop chan struct{}

	mu     sync.Mutex
	byKey  map[poolKey]*pool
	closed bool
	// live is what PoolConfig.Total bounds: the prepared containers
	// waiting, being started or deleted, or taken by a job not yet ended,
	// of every pool (including pools deleted since).
	live int

	owner   string // LabelOwner of the containers
	builds  chan struct{}
	workers sync.WaitGroup
}

func newPools(ctx context.Context, m *Manager, cfg PoolConfig) *pools {
	p := &pools{m: m, cfg: cfg, ctx: context.WithoutCancel(ctx), stop: make(chan struct{}),
		owner: ownerLabel(), byKey: map[poolKey]*pool{}, builds: make(chan struct{}, min(max(runtime.NumCPU(), 1), maxBuilders))}
	if cfg.Max > 0 {
		p.workers.Add(1)
		go p.maintain()
	}
	return p
}

// take returns a prepared container for key made from the image with
// digest image, or nil when none is ready; a miss raises the pool's
// target. No containerd call happens under the lock. The pool refills
// when the job calls done: not while the job runs, whose script would
// otherwise share the CPU with the refill. Until then the container
// keeps its place under PoolConfig.Total.
func (p *pools) take(key poolKey, image digest.Digest) *started {
	if p.cfg.Max <= 0 {
		return nil
	}
	for first := true; ; first = false {
		s := p.pop(key, image, first)
		if s == nil {
			return nil
		}
		// Outside the lock: usable may ask the shim.
		why := s.usable(p.ctx)
		p.mu.Lock()
		if why == "" {
			if pl := p.byKey[key]; pl != nil {
				pl.hits++
				pl.taken++ // its place is the pool's until done
			} else {
				p.live-- // the pool is gone (KeepSites): no done will count it
			}
			p.mu.Unlock()
			return s
		}
		p.retire(s, why, nil)
		p.mu.Unlock()
	}
}

// pop removes the newest ready container of key's pool (the oldest age
// out), or, when there is none, counts a miss and raises the target. The
// first pop of a job also marks the pool used and retires what waits with
// an image other than image.
func (p *pools) pop(key poolKey, image digest.Digest, first bool) *started {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	pl := p.byKey[key]
	if pl == nil {
		pl = &pool{key: key, target: max(p.cfg.Min, 1)}
		p.byKey[key] = pl
	}
	if first {
		pl.lastJob = time.Now()
		if pl.digest != image {
			// The image was rebuilt: what waits has the old one.
			pl.digest, pl.checked = image, time.Now()
			for _, s := range pl.ready {
				p.retire(s, "image rebuilt", nil)
			}
			pl.ready = nil
		}
	}
	if len(pl.ready) == 0 {
		pl.misses++
		pl.pendingMisses++
		pl.target = min(pl.target+1, p.cfg.Max)
		return nil
	}
	s := pl.ready[len(pl.ready)-1]
	pl.ready = pl.ready[:len(pl.ready)-1]
	return s
}

// done refills the pool of key after a job of it has ended, giving back
// the place of the container the job took. When the job was a miss and
// the cap stops the refill, a less recently used pool gives up one
// waiting container for it.
func (p *pools) done(key poolKey) {
	if p.cfg.Max <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pl := p.byKey[key]
	if pl == nil {
		return
	}
	// Which of the pool's jobs took a container is not known here: a
	// miss's done may give back a running job's place early. The sum
	// stays right.
	if pl.taken > 0 {
		pl.taken--
		p.live--
	}
	p.refill(pl)
	if pl.pendingMisses == 0 {
		return
	}
	pl.pendingMisses--
	if p.closed || time.Now().Before(pl.failing) || len(pl.ready)+pl.preparing+pl.incoming >= pl.target {
		return
	}
	if v := victim(pl, p.byKey); v != nil {
		p.evict(v, pl)
	}
}

// room is how many more preparations PoolConfig.Total allows now.
// p.mu is held.
func (p *pools) room() int {
	if p.cfg.Total <= 0 {
		return math.MaxInt
	}
	return p.cfg.Total - p.live
}

// refill starts preparations until the pool will hold its target, as far
// as PoolConfig.Total allows. p.mu is held.
func (p *pools) refill(pl *pool) {
	if p.closed || p.byKey[pl.key] != pl || time.Now().Before(pl.failing) {
		return
	}
	for len(pl.ready)+pl.preparing < pl.target && p.room() > 0 {
		pl.preparing++
		p.live++
		p.workers.Add(1)
		go p.prepare(pl)
	}
}

// victim is the pool that gives up a waiting container for pl, whose job
// found it empty: of the other pools with one waiting, the one whose last
// job is the oldest, if that is older than pl's (a pool idler than all
// the others takes from none). Nil when there is none.
func victim(pl *pool, all map[poolKey]*pool) *pool {
	var v *pool
	for _, o := range all {
		if o != pl && len(o.ready) > 0 && o.lastJob.Before(pl.lastJob) && (v == nil || o.lastJob.Before(v.lastJob)) {
			v = o
		}
	}
	return v
}

// evict retires the oldest waiting container of v for pl, which refills
// once it is deleted (its place counts until then). v's target drops to
// what it still holds, so that check does not refill it right back; a
// pool left with target 0 and nothing is deleted by check, and its next
// job makes it again. p.mu is held.
func (p *pools) evict(v, pl *pool) {
	s := v.ready[0]
	v.ready = v.ready[1:]
	v.target = min(v.target, len(v.ready)+v.preparing+v.incoming)
	pl.incoming++
	p.m.log.Debug("a pool gives up a prepared container for a more recently used one",
		"site", v.key.site, "for_site", pl.key.site)
	p.retire(s, "evicted", func() {
		pl.incoming--
		p.refill(pl)
	})
}

// prepare starts one container for pl.
func (p *pools) prepare(pl *pool) {
	defer p.workers.Done()
	s, err := p.build(pl.key)
	p.mu.Lock()
	defer p.mu.Unlock()
	pl.preparing--
	switch {
	case err != nil:
		p.live-- // build leaves nothing behind
		if !p.stopped() {
			p.m.log.Warn("preparing a container failed; the pool retries later",
				"site", pl.key.site, "image", pl.key.image, "retry_in", failureBackoff, "err", err)
		}
		pl.failing = time.Now().Add(failureBackoff)
	case p.closed || p.byKey[pl.key] != pl || len(pl.ready) >= pl.target:
		p.retire(s, "not needed", nil)
	case pl.digest != "" && s.image != pl.digest:
		p.retire(s, "image rebuilt", nil)
	default:
		pl.ready = append(pl.ready, s)
		if pl.digest == "" {
			pl.digest, pl.checked = s.image, time.Now()
		}
	}
}

// build starts a prepared container for key, one of at most cap(builds)
// at once.
func (p *pools) build(key poolKey) (*started, error) {
	select {
	case p.builds <- struct{}{}:
		defer func() { <-p.builds }()
	case <-p.stop:
		return nil, errors.New("pools closed")
	}
	if p.stopped() {
		return nil, errors.New("pools closed")
	}
	ctx, cancel := context.WithTimeout(p.ctx, cleanupTimeout)
	defer cancel()
	id, err := preparedID()
	if err != nil {
		return nil, err
	}
	// A prepared container's deadline covers its longest wait and the
	// longest job after it, so that no sweep of another instance takes it
	// for a leftover while this one is alive.
	deadline := time.Now().Add(p.cfg.MaxAge + poolTick + key.limits.Wall + key.limits.KillGrace)
	img, err := p.m.image(ctx, key.image)
	if err != nil {
		return nil, err
	}
	return p.m.startContainer(ctx, key, img, identity{id: "cgibox-" + id, labels: map[string]string{
		LabelRequest:  id,
		LabelSite:     key.site,
		LabelDeadline: deadline.UTC().Format(time.RFC3339),
		LabelInstance: p.m.instance,
		LabelPrepared: "true",
		LabelOwner:    p.owner,
	}})
}

// preparedID names a prepared container: "p-" and 16 random hex digits.
func preparedID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("container id: %w", err)
	}
	return "p-" + hex.EncodeToString(b[:]), nil
}

// retire deletes a prepared container that will serve no job, in the
// background. Its place (see PoolConfig.Total) is free once it is gone;
// then after, when not nil, runs with p.mu held. p.mu is held.
func (p *pools) retire(s *started, why string, after func()) {
	if why == "exited" || why == "wrote before its job" {
		p.m.log.Warn("a prepared container failed before its job; replacing it",
			"container", s.id, "why", why, "stderr", s.errs.kept())
	} else {
		p.m.log.Debug("retiring a prepared container", "container", s.id, "why", why)
	}
	p.workers.Add(1)
	go func() {
		defer p.workers.Done()
		p.m.cleanup(p.ctx, s)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.live--
		if after != nil {
			after()
		}
	}()
}

// stopped reports whether close has begun.
func (p *pools) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// maintain checks the pools every poolTick until close.
func (p *pools) maintain() {
	defer p.workers.Done()
	t := time.NewTicker(poolTick)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.check(now)
		}
	}
}

// check retires dead and stale containers, shrinks idle pools, drops
// empty ones and refills the rest.
func (p *pools) check(now time.Time) {
	p.mu.Lock()
	var stale []*pool
	var waiting []*started
	for _, pl := range p.byKey {
		if now.Sub(pl.checked) >= imageCheckEvery && len(pl.ready) > 0 {
			pl.checked = now
			stale = append(stale, pl)
		}
		waiting = append(waiting, pl.ready...)
	}
	p.mu.Unlock()
	// Liveness outside the lock too (usable may ask the shim).
	unusable := map[*started]string{}
	for _, s := range waiting {
		if why := s.usable(p.ctx); why != "" {
			unusable[s] = why
		}
	}
	// Image lookups outside the lock: a job's take must not wait for
	// containerd.
	digests := map[*pool]digest.Digest{}
	for _, pl := range stale {
		ctx, cancel := context.WithTimeout(p.ctx, connectTimeout)
		img, err := p.m.client.GetImage(ctx, pl.key.image)
		cancel()
		switch {
		case err == nil:
			digests[pl] = img.Target().Digest
		case errdefs.IsNotFound(err):
			digests[pl] = "" // removed: none of its containers may wait
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for key, pl := range p.byKey {
		d, looked := digests[pl]
		if looked {
			pl.digest = d
		}
		if now.Sub(pl.lastJob) >= p.cfg.Idle && now.Sub(pl.shrunk) >= p.cfg.Idle && pl.target > p.cfg.Min {
			pl.target--
			pl.shrunk = now // one step per idle period; lastJob stays the last job's
		}
		// A replacement whose place the cap still gives to the container
		// it replaces starts once that one is gone.
		replace := func() { p.refill(pl) }
		keep := pl.ready[:0]
		for _, s := range pl.ready {
			switch why := unusable[s]; {
			case why != "":
				p.retire(s, why, replace)
			case now.Sub(s.born) >= p.cfg.MaxAge:
				p.retire(s, "old", replace)
			case looked && d == "":
				p.retire(s, "image removed", nil)
			case pl.digest != "" && s.image != pl.digest:
				p.retire(s, "image rebuilt", replace)
			default:
				keep = append(keep, s)
			}
		}
		pl.ready = keep
		for len(pl.ready) > pl.target {
			p.retire(pl.ready[0], "idle", nil)
			pl.ready = pl.ready[1:]
		}
		if pl.target == 0 && len(pl.ready) == 0 && pl.preparing == 0 && pl.taken == 0 {
			delete(p.byKey, key)
			continue
		}
		p.refill(pl)
	}
}

// close stops the pools and deletes every prepared container, waiting
// (bounded by ctx) until they are gone.
func (p *pools) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	for _, pl := range p.byKey {
		for _, s := range pl.ready {
			p.retire(s, "closing", nil)
		}
		pl.ready = nil
	}
	p.mu.Unlock()
	// Preparations in flight finish and, seeing closed, retire what they
	// made; those waiting for their turn give up.
	close(p.stop)
	done := make(chan struct{})
	go func() {
		p.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("prepared containers still being deleted: %w", ctx.Err())
	}
}

// KeepSites deletes the pools of every site not in sites, retiring their
// prepared containers in the background; the pools of the sites in sites
// stay as they are. The owner of the gateway calls it after a
// configuration reload with the sites it now serves, so that a removed
// site's containers do not wait until cgibox stops. A later job of such a
// site runs as usual and makes its pool again. Preparations under way for
// a deleted pool are deleted when they finish.
func (m *Manager) KeepSites(sites []string) {
	p := m.pools
	keep := make(map[string]bool, len(sites))
	for _, s := range sites {
		keep[s] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pools, retired := 0, 0
	for key, pl := range p.byKey {
		if keep[key.site] {
			continue
		}
		for _, s := range pl.ready {
			p.retire(s, "site removed", nil)
		}
		retired += len(pl.ready)
		pl.ready = nil
		// No done will find the pool to give back the places of its
		// running jobs' containers.
		p.live -= pl.taken
		pl.taken = 0
		delete(p.byKey, key)
		pools++
	}
	if pools > 0 {
		m.log.Info("deleted the pools of sites no longer served", "pools", pools, "prepared_containers", retired)
	}
}

// PoolStats describes one pool.
type PoolStats struct {
	Site, Image string
	Ready       int    // prepared containers waiting for a job
	Preparing   int    // being started
	Target      int    // what the pool refills to
	Hits        uint64 // jobs that took a prepared container
	Misses      uint64 // jobs that started their own
}

// Pools describes the pools, ordered by site and image.
func (m *Manager) Pools() []PoolStats {
	p := m.pools
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []PoolStats
	for _, pl := range p.byKey {
		out = append(out, PoolStats{Site: pl.key.site, Image: pl.key.image, Ready: len(pl.ready),
			Preparing: pl.preparing, Target: pl.target, Hits: pl.hits, Misses: pl.misses})
	}
	slices.SortFunc(out, func(a, b PoolStats) int {
		return strings.Compare(a.Site+"\x00"+a.Image, b.Site+"\x00"+b.Image)
	})
	return out
}

// PreparedCost is what waiting prepared containers hold: their number and
// the memory of their shims and launchers, as proportional set size (a
// page shared by n processes counts 1/n for each: the launchers share the
// cgibox binary's pages), or resident set size on kernels without
// /proc/PID/smaps_rollup.
type PreparedCost struct {
	Containers  int
	ShimRSS     int64 // bytes, all shims together
	LauncherRSS int64 // bytes, all launchers together
}

// PreparedCost measures the prepared containers waiting now.
func (m *Manager) PreparedCost(ctx context.Context) (PreparedCost, error) {
	p := m.pools
	p.mu.Lock()
	var tasks []*started
	for _, pl := range p.byKey {
		tasks = append(tasks, pl.ready...)
	}
	p.mu.Unlock()
	var c PreparedCost
	var errs []error
	for _, s := range tasks {
		pid := int(s.task.Pid())
		launcher, err := rss(pid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ppid, err := parentPid(pid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		shim, err := rss(ppid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.Containers++
		c.LauncherRSS += launcher
		c.ShimRSS += shim
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// rss is the proportional set size of process pid in bytes (Pss of
// /proc/PID/smaps_rollup, Linux 4.14+), else its VmRSS.
func rss(pid int) (int64, error) {
	v, err := procField("/proc/"+strconv.Itoa(pid)+"/smaps_rollup", "Pss")
	if err != nil {
		if v, err = procStatus(pid, "VmRSS"); err != nil {
			return 0, err
		}
	}
	kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory of %d: %w", pid, err)
	}
	return kb << 10, nil
}

// parentPid is the PPid of process pid.
func parentPid(pid int) (int, error) {
	v, err := procStatus(pid, "PPid")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(v)
}

// procStatus reads one field of /proc/PID/status.
func procStatus(pid int, field string) (string, error) {
	return procField("/proc/"+strconv.Itoa(pid)+"/status", field)
}

// procField reads the field of a "Name: value" file of /proc.
func procField(file, field string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s: no %s", file, field)
}

// WaitingForLiveOwner reports whether a container with these labels is a
// prepared container whose owner may still take it: its owner has not
// provably ended (see ownerGone). Sweeps of other instances leave such
// containers alone.
func WaitingForLiveOwner(labels map[string]string) bool {
	return labels[LabelPrepared] == "true" && !ownerGone(labels[LabelOwner])
}
