// Package loader loads a rank's shard of a safetensors checkpoint into MLX,
// one section (a transformer layer, the embeddings, the head, a tower) at a
// time, so that a model far larger than one machine's memory can be loaded
// with tensor parallelism without ever holding more than the rank's shard
// and one section's worth of extra memory.
//
// # Why sections
//
// Evaluating a whole model at once (mlx-lm's mx.eval(model.parameters())
// after model.shard()) holds every full tensor: a 612 GB checkpoint on a
// 512 GB machine panics the kernel. Evaluating layer by layer after
// model.shard() is not enough either, because shard() builds lazy slice
// graphs for all layers up front and each holds its full original. What
// works is to finish one section before starting the next: materialize,
// shard, evaluate, free the originals, clear the cache, check memory.
//
// # Strategies
//
// Three strategies sit behind one iterator, ShardLoader.Layers:
//
//   - Direct (the default) never materializes a full tensor the rank needs
//     only part of: each array of the shard is allocated by MLX at its final
//     size (mlx.NewArrayFill) and filled from exactly the file byte ranges
//     that hold the rank's part, by a small pool of goroutines. Peak ≈ the
//     shard; bytes read ≈ the shard plus the replicated tensors.
//   - EvalShardEval is mlx-lm's and exo's path: per section the full
//     tensors are read, the rank's slices of them made contiguous and
//     evaluated in one graph, each full tensor freed once its copy is made.
//     Peak ≈ shard so far + one full section + its shard. The full tensors
//     are filled by the same workers as Direct's arrays, or, with
//     ReadMLX, read by MLX's own loader as mlx-lm reads them.
//   - ChunkedEval loads the whole model section by section, unsharded.
//
// # Copying at memory speed
//
// The Direct strategy writes each byte of the shard once: MLX allocates the
// array uninitialised, its pages faulted in at once (huge pages on Linux),
// and the workers copy the file's bytes into it. A part is cut into 8 MiB
// pieces; the worker that allocated it copies pieces and lends the rest to
// workers with nothing left to start, so one large tensor at the end of a
// section is copied by all of them. How the bytes are read is a ReadMode:
// by default long runs with pread (no page faults) and the short rows of a
// part split on its last axis out of the file's mapping (no bytes of other
// ranks read); ReadMap lets a part that is one range of its file back the
// array through a private mapping (no copy at all where MLX's Metal build
// can wrap it). A part is never listed run by run: its safetensors.Part
// (rows of segments) gives the runs of any piece on demand, and each piece
// is one safetensors.File.ReadPartAt, which counts what it reads in the
// checkpoint's BytesRead.
//
// # Rules
//
// Which tensor is split along which axis is data: a RuleSet of regular
// expressions mapped to mlx's shardings (all-to-sharded, sharded-to-all, a
// split along an axis, with fused segments and head counts). DeepSeekV3Rules
// (Kimi K2.x) and LlamaRules reproduce mlx-lm's shard() methods. Every split
// of the whole checkpoint is validated — axis, fused segments, head counts,
// quantization groups — before a byte of weight is read.
//
// # Plans
//
// NewPlan predicts, from tensor descriptions alone (a checkpoint's headers,
// or a model described without files), what a rank reads, keeps and peaks
// at, section by section, for a strategy; Open refuses a load whose peak
// would not fit under the memory guard (a *PlanError). MLX's CPU allocator
// accounts exactly the bytes asked for (measured), so on the CPU the plan's
// peak is the measured MLX peak to within a few hundred bytes. Another
// allocator's rounding can be modelled through PlanOptions.Alloc.
//
// # Streaming
//
// OpenStream loads a job where only some ranks hold the checkpoint: the
// others receive their shard over the distributed group instead of reading
// it. A source reads each receiver's part of every tensor with the same
// byte ranges Direct reads for that rank, into an MLX array, and sends it
// with a CRC-32C of its bytes; the receiver's arrays are MLX's receive
// buffers, each checksummed while the next arrives, section by section
// under its memory guard, so its peak stays its shard. Only the receiver's
// bytes cross the link. Every rank computes the same StreamPlan (which
// source sends which section to whom; over ring only neighbours can), so
// sends and receives pair up without a conversation; a source keeps a
// bounded window of parts in flight, its sends to each receiver on a stream
// of that receiver's own, so that its reads go on meanwhile and one
// receiver's sends do not wait behind another's. A receiver can keep what
// it got as its own shard checkpoint (StreamOptions.Cache, Reshard's
// layout).
//
// # Placement
//
// Tensor parallelism alone needs equal nodes and head counts that divide;
// Place also cuts the layers into pipeline stages, each held by TP ranks,
// by memory: from the same headers, each stage's peak (its load's, or its
// weights plus KV cache plus activations) is predicted for every split of
// the layers into consecutive runs, and of the splits where every rank
// fits, the one whose heaviest stage reads the least per step wins (ties:
// the least full rank). The embeddings go to the first stage, the final
// norm and head to the last. PlaceAuto also chooses the TP degree: the
// one whose token step reads least on the ranks it crosses in turn. A
// rank then loads its stage alone:
// Placement.PlanOptions sets its slice within the stage and
// PlanOptions.Keep, the filter that keeps other stages' sections out of
// its plan, so the guard, the refusal before any read and planned peak =
// measured peak hold per stage as for a whole model. Splits are validated
// for the kept sections only.
//
// # What needs no MLX
//
// The rules, the sections, the plan, placement and Reshard are in package
// loader/shard, which does not link MLX: a tool that plans, places or
// reshards (examples/reshard) builds and runs on a machine without it.
// This package gives every one of their names as an alias (loader.Plan is
// shard.Plan, loader.NewPlan calls shard.NewPlan), so either import works.
//
// # Failure
//
// A guard trip, a cancelled context, a missing, resized or unreadable shard
// file end the iteration with a typed error (*memguard.ExceededError, the
// context's error, *LoadError) after freeing everything the section had
// created: once the caller frees what it received, MLX's active memory is
// back where it started.
//
// Mapped files are read with page faults turned into errors, so a file
// truncated under the loader is an error, not a crash.
//
// In a streamed load a peer that dies, source or receiver, ends every rank
// that waited on it with a *StreamError naming that rank and the section
// (ErrPeerLost from the back-end inside); one that stops answering trips
// the group's watchdog (jaccl.Options.Timeout), which ends the process
// with the same naming. A part whose bytes do not match its source's
// checksum ends its receiver with a *StreamError matching ErrChecksum that
// names the tensor. Either way what the section had received is freed.
package loader
