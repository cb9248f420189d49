package runbooks

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
)

// memStore is an in-memory Store for unit tests (the Redis store is
// tested against redis-server).
type memStore struct {
	mu      sync.Mutex
	runs    map[string][]byte
	saves   int
	refused int
	onSave  func(r *Run) // after a successful save, outside the lock
	// notReplicated: SaveReplicated writes (as the primary does) but
	// reports that no replica acknowledged it.
	notReplicated atomic.Bool
}

// SaveReplicated is Save, then ErrNotReplicated while notReplicated is set.
func (s *memStore) SaveReplicated(ctx context.Context, r *Run) error {
	if err := s.Save(ctx, r); err != nil {
		return err
	}
	if s.notReplicated.Load() {
		return fmt.Errorf("fake: 0 of 1 replicas: %w", ErrNotReplicated)
	}
	return nil
}

func newMemStore() *memStore { return &memStore{runs: map[string][]byte{}} }

// Save refuses a lower fence or a final record, as the Redis store does.
func (s *memStore) Save(_ context.Context, r *Run) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.runs[r.ID]; ok {
		var prev Run
		if err := json.Unmarshal(old, &prev); err != nil {
			return err
		}
		if prev.Status.Final() || r.Fence < prev.Fence {
			s.refused++
			return fmt.Errorf("run %s: fence %d vs stored %d (%s): %w", r.ID, r.Fence, prev.Fence, prev.Status, ErrStaleWrite)
		}
	}
	b, err := json.Marshal(r)
	s.runs[r.ID] = b
	s.saves++
	if s.onSave != nil {
		s.mu.Unlock()
		s.onSave(r)
		s.mu.Lock()
	}
	return err
}

// put stores r as it is (a test rewinding a record to an earlier state).
func (s *memStore) put(r *Run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(r)
	s.runs[r.ID] = b
}

// fakeLease is a Lease whose loss a test decides.
type fakeLease struct {
	fence int64
	lost  atomic.Bool
}

func testLease(fence int64) *fakeLease { return &fakeLease{fence: fence} }

func (l *fakeLease) Fence() int64 { return l.fence }

func (l *fakeLease) Check() error {
	if l.lost.Load() {
		return fmt.Errorf("fake lease %d: %w", l.fence, ErrLeaseLost)
	}
	return nil
}

func (s *memStore) Load(_ context.Context, id string) (*Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.runs[id]
	if !ok {
		return nil, ErrRunNotFound
	}
	r := &Run{}
	return r, json.Unmarshal(b, r)
}

// fakeNodes is an in-memory NodeOps with resourceVersion checks.
type fakeNodes struct {
	mu     sync.Mutex
	nodes  map[string]*Node
	events []string
	writes int
	taints map[string]bool
}

func newFakeNodes(names ...string) *fakeNodes {
	f := &fakeNodes{nodes: map[string]*Node{}}
	for _, n := range names {
		f.nodes[n] = &Node{Name: n, Annotations: map[string]string{}, ResourceVersion: "1"}
	}
	return f
}

func (f *fakeNodes) GetNode(_ context.Context, name string) (*Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNodeNotFound, name)
	}
	c := *n
	c.Annotations = map[string]string{}
	for k, v := range n.Annotations {
		c.Annotations[k] = v
	}
	return &c, nil
}

func (f *fakeNodes) SetUnschedulable(_ context.Context, name, rv string, u bool, ann map[string]*string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[name]
	if !ok {
		return ErrNodeNotFound
	}
	if n.ResourceVersion != rv {
		return ErrConflict
	}
	n.Unschedulable = u
	for k, v := range ann {
		if v == nil {
			delete(n.Annotations, k)
		} else {
			n.Annotations[k] = *v
		}
	}
	f.bump(n)
	f.writes++
	return nil
}

func (f *fakeNodes) bump(n *Node) {
	v, _ := strconv.Atoi(n.ResourceVersion)
	n.ResourceVersion = strconv.Itoa(v + 1)
}

func (f *fakeNodes) Event(_ context.Context, node, typ, reason, msg string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, node+" "+typ+" "+reason)
	return nil
}

func (f *fakeNodes) Annotate(_ context.Context, name string, ann, labels map[string]*string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[name]
	if !ok {
		return ErrNodeNotFound
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	for src, dst := range map[*map[string]*string]map[string]string{&ann: n.Annotations, &labels: n.Labels} {
		for k, v := range *src {
			if v == nil {
				delete(dst, k)
			} else {
				dst[k] = *v
			}
		}
	}
	f.bump(n)
	f.writes++
	return nil
}

func (f *fakeNodes) SetTaint(_ context.Context, name, key, value, effect string, present bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.taints == nil {
		f.taints = map[string]bool{}
	}
	f.taints[name+"/"+key] = present
	f.writes++
	return nil
}
