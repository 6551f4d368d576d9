package mlx

import (
	"sync"

	"github.com/ebitengine/purego"
)

var (
	pthreadSelfOnce sync.Once
	pthreadSelf     uintptr
)

// threadID identifies the calling OS thread (pthread_self, a read of a
// thread register in libSystem), so that calls made inside Do on the MLX
// thread run directly instead of queueing behind themselves.
func threadID() uintptr {
	pthreadSelfOnce.Do(func() {
		h, err := purego.Dlopen("/usr/lib/libSystem.B.dylib", purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			pthreadSelf, _ = purego.Dlsym(h, "pthread_self")
		}
	})
	if pthreadSelf == 0 {
		return 0
	}
	id, _, _ := purego.SyscallN(pthreadSelf)
	return id
}

const haveThreadID = true

var (
	schedYieldOnce sync.Once
	schedYield     uintptr
)

// osYield gives the core to another runnable thread, if there is one, while
// a call spins waiting: MLX's own stream threads need the core more than
// the spinner does.
func osYield() {
	schedYieldOnce.Do(func() {
		h, err := purego.Dlopen("/usr/lib/libSystem.B.dylib", purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			schedYield, _ = purego.Dlsym(h, "sched_yield")
		}
	})
	if schedYield != 0 {
		_, _, _ = purego.SyscallN(schedYield)
	}
}
