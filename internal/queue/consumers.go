package queue

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// pruneScript deletes, in one atomic step, the group's consumers with no
// pending entries that have been idle (no read or claim attempted) for at
// least ARGV[2] ms. Being one script, no consumer can read an entry
// between the check and XGROUP DELCONSUMER, which would drop that entry
// from the pending list.
// KEYS[1] stream; ARGV[1] group, ARGV[2] idle ms. Returns the names.
var pruneScript = redis.NewScript(`
local cs = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(cs) == 'table' and cs.err then
  return cs
end
local idle = tonumber(ARGV[2])
local deleted = {}
for _, c in ipairs(cs) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i+1] end
  if tonumber(f['pending']) == 0 and tonumber(f['idle']) >= idle then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    deleted[#deleted+1] = f['name']
  end
end
return deleted`)

// PruneConsumers deletes the consumers of the group that have nothing
// pending and have been idle longer than idle, and returns their names,
// sorted. Consumers are named after pods (<pod>-<i>), so without this
// every replica that ever ran stays in the group. A consumer with pending
// entries is never deleted (its entries would leave the pending list and
// no worker would claim them); another worker claims them after
// ClaimAfter and a later call deletes it. A live worker reads every few
// seconds, so a threshold of minutes is safe; deleting a live one is
// harmless anyway (its next read creates it again). No stream or group
// yet: nothing to do.
func (q *Queue) PruneConsumers(ctx context.Context, idle time.Duration) (deleted []string, err error) {
	if idle <= 0 {
		return nil, fmt.Errorf("prune consumers: idle must be positive, got %s", idle)
	}
	deleted, err = pruneScript.Run(ctx, q.rdb, []string{q.stream}, q.group, idle.Milliseconds()).StringSlice()
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") || strings.Contains(err.Error(), "no such key") {
			return nil, nil
		}
		return nil, fmt.Errorf("prune consumers: %w", err)
	}
	slices.Sort(deleted)
	return deleted, nil
}
