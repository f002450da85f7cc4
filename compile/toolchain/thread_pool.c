// TVM's parallel loops on WebAssembly threads: the TVMBackendParallelLaunch of the CPU model library.
//
// The library runs in one Web Worker (the engine's) and in N-1 more that instantiate the same module on the same
// shared memory; each of those calls tabllm_thread_pool_work() once, which never returns. A launch cuts the loop
// into a few tasks per thread and publishes them; every thread, the launching one included, claims tasks one at
// a time until none is left, and the launch returns when all are done, with all of their writes visible.
// Claiming (rather than task i for thread i) matters on a machine with few cores: a thread the OS preempts holds
// up one small task, not a fixed share of the loop (measured on 2 cores: static shares made 2 threads anywhere
// from 0.9x to 1.6x one thread from one page load to the next).
//
// Threads poll a while before they sleep on a counter (memory.atomic.wait32): a decode step launches a few
// hundred parallel loops back to back, and waking a sleeping thread costs tens of microseconds in a browser.
// How long they poll is the engine's choice (tabllm_thread_pool_configure): polling holds a core that the
// browser's other threads may need.
//
// TVMBackendParallelBarrier is left out: tasks that wait for each other cannot be claimed one at a time. A
// library that uses it fails with an error that names it (no schedule of ours emits one).
#include <emscripten.h>
#include <stdatomic.h>
#include <tvm/runtime/c_backend_api.h>

#define TASKS_PER_THREAD 4
#define TASK_BITS 16  // job_state: the job's generation above, the tasks claimed so far below
#define TASK_MASK ((1 << TASK_BITS) - 1)

static _Atomic int job_state;
static _Atomic int job_done;  // tasks finished
static _Atomic int job_failed;
static FTVMParallelLambda job_lambda;
static void* job_closure;
static int job_tasks;
static int generation;     // the launching thread's count of jobs, modulo 2^TASK_BITS
static int pool_size = 1;  // threads taking part in a launch, the launching one included
static int spin_rounds;    // polls of a counter before a thread sleeps on it
static int in_launch;      // a parallel loop nested in another runs serially on its thread

static int generation_of(int state) { return (state >> TASK_BITS) & TASK_MASK; }

// Sleeps (after polling) until *address no longer satisfies `same`.
static void wait_while(_Atomic int* address, int (*same)(int value, int than), int than) {
  for (int round = 0; round < spin_rounds; ++round) {
    if (!same(atomic_load(address), than)) return;
  }
  for (int value; same(value = atomic_load(address), than);) {
    __builtin_wasm_memory_atomic_wait32((int*)address, value, -1);
  }
}

static int equal(int value, int than) { return value == than; }
static int in_generation(int state, int than) { return generation_of(state) == than; }

// Runs tasks of job `job` until none is left unclaimed (or a newer job has replaced it).
static void run_claimed_tasks(int job) {
  for (;;) {
    int state = atomic_load(&job_state);
    if (generation_of(state) != job || (state & TASK_MASK) >= job_tasks) return;
    if (!atomic_compare_exchange_weak(&job_state, &state, state + 1)) continue;
    // The job cannot change before this task is done: its fields are stable until then.
    TVMParallelGroupEnv env = {0, job_tasks};
    if (job_lambda(state & TASK_MASK, &env, job_closure) != 0) atomic_store(&job_failed, 1);
    if (atomic_fetch_add(&job_done, 1) + 1 == job_tasks) {
      __builtin_wasm_memory_atomic_notify((int*)&job_done, 1);
    }
  }
}

EMSCRIPTEN_KEEPALIVE void tabllm_thread_pool_configure(int threads, int rounds) {
  pool_size = threads < 1 ? 1 : threads;
  spin_rounds = rounds;
}

EMSCRIPTEN_KEEPALIVE void tabllm_thread_pool_work(void) {
  int seen = generation_of(atomic_load(&job_state));
  for (;;) {
    wait_while(&job_state, in_generation, seen);
    seen = generation_of(atomic_load(&job_state));
    run_claimed_tasks(seen);
  }
}

int TVMBackendParallelLaunch(FTVMParallelLambda lambda, void* closure, int num_task) {
  if (pool_size == 1 || in_launch) {
    TVMParallelGroupEnv env = {0, 1};
    return lambda(0, &env, closure);
  }
  in_launch = 1;
  job_lambda = lambda;
  job_closure = closure;
  job_tasks = num_task > 0 ? num_task : pool_size * TASKS_PER_THREAD;  // 0: the runtime's choice
  atomic_store(&job_done, 0);
  atomic_store(&job_failed, 0);
  generation = (generation + 1) & TASK_MASK;
  atomic_store(&job_state, generation << TASK_BITS);
  __builtin_wasm_memory_atomic_notify((int*)&job_state, pool_size - 1);
  run_claimed_tasks(generation);
  for (int done; (done = atomic_load(&job_done)) != job_tasks;) wait_while(&job_done, equal, done);
  in_launch = 0;
  return atomic_load(&job_failed) ? -1 : 0;
}
