package loader

import (
	"fmt"
	"path/filepath"

	"github.com/mlxdist/mlxdist/internal/atomicfile"
	"github.com/mlxdist/mlxdist/loader/shard"
	"github.com/mlxdist/mlxdist/safetensors"
)

// shardMetaKey marks the files of a rank's shard (see shard.ShardMetaKey).
const shardMetaKey = shard.ShardMetaKey

// checkUnstamped refuses shard files that carry Reshard's metadata in a
// directory without a stamp.
func checkUnstamped(path string, d *safetensors.Dir) error {
	for _, f := range d.Files() {
		if v, ok := f.Metadata()[shardMetaKey]; ok {
			return fmt.Errorf("%w: %s holds rank %s's shard file %s but no %s; run reshard again to write it whole",
				ErrUnstampedShard, path, v, filepath.Base(f.Path()), ShardStampName)
		}
	}
	return nil
}

// presharded adapts the options of a load from a resharded checkpoint: the
// files already hold this rank's parts, so every tensor is read whole.
func presharded(dir string, o PlanOptions) (PlanOptions, error) {
	s, err := ReadShardStamp(dir)
	if err != nil || s == nil {
		return o, err
	}
	ws := max(o.WorldSize, 1)
	if s.Rank != o.Rank || s.WorldSize != ws {
		return o, fmt.Errorf("%w: %s holds rank %d of %d, this is rank %d of %d", ErrShardMismatch, dir, s.Rank, s.WorldSize, o.Rank, ws)
	}
	o.Rules = &RuleSet{Name: "presharded " + s.Rules}
	return o, nil
}

func writeJSON(path string, v any) error {
	if err := atomicfile.WriteJSON(path, v); err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	return nil
}
