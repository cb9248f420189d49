package runstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// scanBatch bounds each MGET of Active.
const scanBatch = 200

// Active returns every indexed run that is not final (pending, running,
// deferred, held), oldest first. Records that expired or cannot be
// decoded are left out; corrupt counts the latter.
func (s *Store) Active(ctx context.Context) (runs []*runbooks.Run, corrupt int, err error) {
	ids, err := s.rdb.ZRange(ctx, s.index(), 0, -1).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("run index: %w", err)
	}
	for len(ids) > 0 {
		batch := ids[:min(scanBatch, len(ids))]
		ids = ids[len(batch):]
		keys := make([]string, len(batch))
		for i, id := range batch {
			keys[i] = s.key(id)
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, 0, fmt.Errorf("runs: %w", err)
		}
		for _, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue // expired since it was indexed
			}
			var head struct {
				Status runbooks.Status `json:"status"`
			}
			if json.Unmarshal([]byte(str), &head) != nil {
				corrupt++
				continue
			}
			if head.Status.Final() {
				continue
			}
			r := &runbooks.Run{}
			if json.Unmarshal([]byte(str), r) != nil {
				corrupt++
				continue
			}
			runs = append(runs, r)
		}
	}
	return runs, corrupt, nil
}
