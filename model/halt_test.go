package model

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
)

// haltRun is one rank's record of the halt job.
type haltRun struct {
	Plain, Halted, Again []int
	Reason               string
}

// TestHaltEndsEveryRankAtTheSameToken lets one rank raise the halt flag
// after it has seen a few tokens, the others never (their Halt is nil):
// every rank must end after the same token, one past the halting rank's
// decision, and the next generation must still be the plain one's, which
// it would not be if one rank had run a step the others did not.
func TestHaltEndsEveryRankAtTheSameToken(t *testing.T) {
	requireRing(t)
	const tokens, after = 16, 4
	for _, tc := range []struct {
		name, spec, shares string
		ranks, halter      int
	}{
		{"llama on two ranks, rank 0 halting", "llama", "", 2, 0},
		{"llama on two ranks, rank 1 halting", "llama", "", 2, 1},
		{"kimi k2.5 on two ranks, rank 0 halting", "kimi", "", 2, 0},
		{"llama in three pipeline stages, the middle one halting", "llama-6", "1,1,1", 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := checkpoint(t, tc.spec)
			out := filepath.Join(t.TempDir(), "halt")
			env := []string{"MODEL_TEST_HELPER=halt", "MODEL_TEST_DIR=" + dir, "MODEL_TEST_OUT=" + out,
				"MODEL_TEST_PROMPTS=" + idsArg(prompts(specs[tc.spec].Vocab)[2]), "MODEL_TEST_TOKENS=" + strconv.Itoa(tokens),
				"MODEL_TEST_HALT_RANK=" + strconv.Itoa(tc.halter), "MODEL_TEST_HALT_AFTER=" + strconv.Itoa(after)}
			if tc.shares != "" {
				env = append(env, "MODEL_TEST_PLACE="+tc.shares, "MODEL_TEST_TP=1")
			}
			launch(t, tc.ranks, []string{os.Args[0]}, env)
			for rank := range tc.ranks {
				b, err := os.ReadFile(fmt.Sprintf("%s.%d", out, rank))
				require.NoError(t, err)
				var r haltRun
				require.NoError(t, json.Unmarshal(b, &r))
				require.Len(t, r.Plain, tokens, "rank %d", rank)
				assert.Equal(t, r.Plain[:after+2], r.Halted, "rank %d's tokens up to the halt", rank)
				assert.Equal(t, "halted", r.Reason, "rank %d", rank)
				assert.Equal(t, r.Plain, r.Again, "rank %d's next generation", rank)
			}
		})
	}
}

// haltRank is one rank of the halt job: a plain greedy generation, one
// that rank MODEL_TEST_HALT_RANK halts once it has seen
// MODEL_TEST_HALT_AFTER+1 tokens, and a plain one again. Every rank writes
// its record to MODEL_TEST_OUT.<rank>.
func haltRank(ctx context.Context, g *jaccl.Group, m *Model) error {
	ids, err := parseIDs(os.Getenv("MODEL_TEST_PROMPTS"))
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(os.Getenv("MODEL_TEST_TOKENS"))
	halter, _ := strconv.Atoi(os.Getenv("MODEL_TEST_HALT_RANK"))
	after, _ := strconv.Atoi(os.Getenv("MODEL_TEST_HALT_AFTER"))
	run := func(halt func() bool, seen *int) ([]int, string, error) {
		gen := m.Generate(ctx, ids, GenerateOptions{MaxTokens: n, Stop: []int{}, Halt: halt})
		var got []int
		for tok, err := range gen.Tokens() {
			if err != nil {
				return nil, "", err
			}
			got = append(got, tok.ID)
			if seen != nil {
				*seen++
			}
		}
		return got, gen.Stats().StopReason, nil
	}
	var r haltRun
	if r.Plain, _, err = run(nil, nil); err != nil {
		return err
	}
	seen := 0
	var halt func() bool
	if g.Rank() == halter {
		halt = func() bool { return seen > after }
	}
	if r.Halted, r.Reason, err = run(halt, &seen); err != nil {
		return err
	}
	if r.Again, _, err = run(nil, nil); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return os.WriteFile(fmt.Sprintf("%s.%d", os.Getenv("MODEL_TEST_OUT"), g.Rank()), b, 0o644)
}

// TestAGenerationWhosePeerFreezesEndsWithinTheGroupTimeout freezes rank 1
// in the middle of a generation, its sockets open, as a hung host would:
// rank 0's next step waits inside a collective that never finishes, and
// only the group's watchdog over each step ends it (without it the job
// waits until the launcher's own deadline).
func TestAGenerationWhosePeerFreezesEndsWithinTheGroupTimeout(t *testing.T) {
	requireRing(t)
	dir := checkpoint(t, "llama")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	err := cluster.Launch(ctx, cluster.LaunchConfig{
		Command: []string{os.Args[0]}, N: 2, Stdout: &out, Stderr: &out, Grace: 2 * time.Second,
		Env: []string{"MODEL_TEST_HELPER=freeze", "MODEL_TEST_DIR=" + dir, "MODEL_TEST_GROUP_TIMEOUT=2s",
			"MODEL_TEST_PROMPTS=" + idsArg(prompts(specs["llama"].Vocab)[2])},
	})
	elapsed := time.Since(start)
	var re *cluster.RankError
	require.ErrorAs(t, err, &re, out.String())
	assert.Equal(t, 0, re.Rank, out.String())
	assert.Less(t, elapsed, time.Minute, out.String())
	assert.Contains(t, out.String(), "[1] freezing after 4 tokens")
	assert.Contains(t, out.String(), "[0] ring: rank 0 of 2: no answer within 2s", out.String())
	assert.NotContains(t, out.String(), "generation finished", out.String())
}

// freezeRank generates on every rank; rank 1 stops itself after a few
// tokens.
func freezeRank(ctx context.Context, g *jaccl.Group, m *Model) error {
	ids, err := parseIDs(os.Getenv("MODEL_TEST_PROMPTS"))
	if err != nil {
		return err
	}
	n := 0
	for _, err := range m.Generate(ctx, ids, GenerateOptions{MaxTokens: 10000, Stop: []int{}}).Tokens() {
		if err != nil {
			return err
		}
		if n++; n == 4 && g.Rank() == 1 {
			fmt.Println("freezing after 4 tokens")
			_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		}
	}
	fmt.Println("generation finished")
	return nil
}
