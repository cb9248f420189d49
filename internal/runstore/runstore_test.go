package runstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

func TestSaveLoadList(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	r := testenv.NewRedis(t)
	c := r.ClientFor(t, 0)
	s := New(c, "t", time.Hour)
	ctx := context.Background()
	base := time.Now().Truncate(time.Millisecond)
	for i, id := range []string{"a", "b", "c"} {
		run := &runbooks.Run{ID: id, Node: "n" + id, Runbook: "cordon", Status: runbooks.StatusPending, Created: base.Add(time.Duration(i) * time.Second),
			Timeline: []runbooks.Entry{{Step: "cordon", Start: base, End: base.Add(time.Millisecond), Outcome: runbooks.OutcomeDone}}}
		if err := s.Save(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Load(ctx, "b")
	if err != nil || got.Node != "nb" || len(got.Timeline) != 1 || !got.Timeline[0].End.Equal(base.Add(time.Millisecond)) {
		t.Fatalf("load: %+v %v", got, err)
	}
	if _, err := s.Load(ctx, "zzz"); !errors.Is(err, runbooks.ErrRunNotFound) {
		t.Fatalf("missing run: %v", err)
	}
	list, err := s.List(ctx, 2)
	if err != nil || len(list) != 2 || list[0].ID != "c" || list[1].ID != "b" {
		t.Fatalf("list newest first, limit 2: %v %v", list, err)
	}
	// An expired record drops out of the list.
	if err := c.Del(ctx, "{t}:run:c").Err(); err != nil {
		t.Fatal(err)
	}
	list, _ = s.List(ctx, 10)
	if len(list) != 2 || list[0].ID != "b" {
		t.Fatalf("after expiry: %v", list)
	}
	if ttl := c.TTL(ctx, "{t}:run:a").Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("run record ttl %s", ttl)
	}
	// A corrupt record is an error that says so.
	c.Set(ctx, "{t}:run:x", "{not json", 0)
	if _, err := s.Load(ctx, "x"); err == nil || !strings.Contains(err.Error(), "corrupt record") {
		t.Fatalf("corrupt: %v", err)
	}
	// ListJSON: the stored objects as they are, newest first, the same runs
	// as List; a corrupt record in the index is left out of both.
	c.ZAdd(ctx, "{t}:runs", redis.Z{Score: float64(base.Add(time.Hour).UnixMilli()), Member: "x"})
	raws, err := s.ListJSON(ctx, 10)
	if err != nil || len(raws) != 2 {
		t.Fatalf("list JSON: %d %v", len(raws), err)
	}
	for i, want := range []string{"b", "a"} {
		stored, _ := c.Get(ctx, "{t}:run:"+want).Bytes()
		if !bytes.Equal(raws[i], stored) {
			t.Fatalf("list JSON %d: %s, stored %s", i, raws[i], stored)
		}
		var r runbooks.Run
		if err := json.Unmarshal(raws[i], &r); err != nil || r.ID != want {
			t.Fatalf("list JSON %d: %+v %v", i, r, err)
		}
	}
	if list, _ = s.List(ctx, 10); len(list) != 2 || list[0].ID != "b" || list[1].ID != "a" {
		t.Fatalf("list with a corrupt record: %v", list)
	}
}
