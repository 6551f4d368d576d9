// Package server answers the OpenAI API — chat completions, completions,
// models — with a model spread over a tensor-parallel group.
//
// # One server, every rank in step
//
// Every rank loads its shard of the model and calls New and Run; only
// rank 0 serves HTTP (Handler). A forward pass under tensor parallelism
// is a sequence of collectives that every rank must enter in the same
// order, so the other ranks cannot decide anything: rank 0 hands them each
// request — the prompt's token ids, max tokens, and the sampling settings
// with a seed — and all ranks then run the same model.Generate and draw
// the same tokens. MLX has no broadcast; an all-sum to which only rank 0
// contributes is one, exact for int32, so a request travels as a header of
// int32s (floats as the halves of their bits) and then the prompt. While
// idle, rank 0 sends a heartbeat header, so that a waiting rank's
// collective never runs into the group's timeout.
//
// # Stopping together
//
// Rank 0 alone knows when to stop early: a stop sequence in the text, a
// client gone, a shutdown. It says so through model.GenerateOptions.Halt:
// every step of the generation carries rank 0's halt flag as one more
// element of the step's first all-sum (the other ranks add zero), so the
// stop costs no collective and no wait of its own, and every rank reads
// the summed flag with the step's token and ends before yielding it. Steps
// are built one token ahead, so a stop rank 0 decides after token n ends
// the generation after token n+1, on every rank alike. Stop tokens and max
// tokens need no flag: every rank sees the same ids. Generate's own
// context is never cancelled, since one rank leaving a generation alone
// would leave the others inside a collective.
//
// # Requests
//
// Requests run one at a time, in arrival order, from a queue bounded by
// Options.MaxQueue (more get 429). One generation at a time makes the
// memory plan simple: New refuses an Options.MaxContext whose KV cache and
// activations (model.PlanInference) would not fit under the guard, and a
// request whose prompt plus max_tokens passes MaxContext is refused with
// 400 context_length_exceeded before it is queued. Errors are OpenAI's
// JSON {"error": {...}} with its statuses: 400 for bad input, 404 for an
// unknown model or path, 413 for a body over Options.MaxBodyBytes, 429 for
// a full queue, 503 once the group has failed or the server is shutting
// down. mlx-lm's logits processors come with its server's names —
// repetition_penalty, presence_penalty and frequency_penalty, each with its
// *_context_size (20 by default), and logit_bias — and reach every rank
// with the order. Settings this server does not have (logprobs,
// top_logprobs, echo, best_of, suffix, tools) are refused with 400
// unsupported_parameter unless they carry their neutral value, rather than
// silently ignored. A failed collective (a rank died) ends Run with the error after
// answering 503 to every waiting request; the group cannot be used again
// and the process should exit non-zero. A peer that dies does not always
// fail the collective in flight (MLX's ring back-end never finishes one it
// starts after noticing), so every decoding step runs under the group's
// watchdog (jaccl.Group.Watch), and a server told to stop ends an answer
// whose generation gives nothing within Options.StopWait with a 503 error
// event rather than leaving its client to a dropped connection.
//
// A chat is rendered with the model's chat template (tokenizer's
// ApplyChatTemplate); a model with none gets the turns as "role: content"
// lines and "assistant: ". Sampling follows OpenAI's defaults
// (temperature 1, top_p 1); top_k and min_p are taken as mlx-lm's server
// takes them. A request with no seed gets one drawn by rank 0.
//
// Streaming answers are server-sent events in OpenAI's chunk format,
// ending with "data: [DONE]"; with stream_options.include_usage the last
// chunk carries the usage. Each request logs one line: its id, tokens in
// and out, time queued, time to first token and tokens per second.
package server
