// TVM's parallel loops on WebAssembly threads: the TVMBackendParallelLaunch of the CPU model library.
//
// The library runs in one Web Worker (the engine's) and in N-1 more that instantiate the same module on the same
// shared memory; each of those calls tabllm_thread_pool_work(i) once, which never returns. A launch publishes the
// job (lambda, closure, task count), bumps a generation counter and wakes the workers; the launching thread runs
// task 0 itself and waits until every worker is done, so a launch returns with all of its writes visible.
//
// Workers spin a little before they sleep on the counter (memory.atomic.wait32): a decode step launches a few
// hundred parallel loops back to back, and waking a sleeping worker costs tens of microseconds in a browser.
#include <emscripten.h>
#include <stdatomic.h>
#include <tvm/runtime/c_backend_api.h>

// About 50 us of polling on this machine class before a thread sleeps.
#define SPIN_ROUNDS 20000

static _Atomic int job_generation;
static _Atomic int job_unfinished;  // workers that have not finished the current job
static _Atomic int job_failed;
static FTVMParallelLambda job_lambda;
static void* job_closure;
static int job_tasks;
static int pool_size = 1;  // threads taking part in a launch, the launching one included
static int in_launch;      // a parallel loop nested in another runs serially on its thread

static _Atomic int barrier_arrived;
static _Atomic int barrier_generation;

static void wait_while_equal(_Atomic int* address, int value) {
  for (int round = 0; round < SPIN_ROUNDS; ++round) {
    if (atomic_load(address) != value) return;
  }
  while (atomic_load(address) == value) __builtin_wasm_memory_atomic_wait32((int*)address, value, -1);
}

static void run_tasks(int thread) {
  TVMParallelGroupEnv env = {0, job_tasks};
  for (int task = thread; task < job_tasks; task += pool_size) {
    if (job_lambda(task, &env, job_closure) != 0) atomic_store(&job_failed, 1);
  }
}

EMSCRIPTEN_KEEPALIVE void tabllm_thread_pool_resize(int threads) { pool_size = threads < 1 ? 1 : threads; }

EMSCRIPTEN_KEEPALIVE void tabllm_thread_pool_work(int thread) {
  int seen = atomic_load(&job_generation);
  for (;;) {
    wait_while_equal(&job_generation, seen);
    seen = atomic_load(&job_generation);
    run_tasks(thread);
    if (atomic_fetch_sub(&job_unfinished, 1) == 1) __builtin_wasm_memory_atomic_notify((int*)&job_unfinished, 1);
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
  job_tasks = num_task > 0 ? num_task : pool_size;  // 0: one task per thread
  atomic_store(&job_failed, 0);
  atomic_store(&job_unfinished, pool_size - 1);
  atomic_fetch_add(&job_generation, 1);
  __builtin_wasm_memory_atomic_notify((int*)&job_generation, pool_size - 1);
  run_tasks(0);
  for (int left; (left = atomic_load(&job_unfinished)) != 0;) wait_while_equal(&job_unfinished, left);
  in_launch = 0;
  return atomic_load(&job_failed) ? -1 : 0;
}

// All tasks of the current launch meet here (TVM emits it for barriers inside a parallel loop).
int TVMBackendParallelBarrier(int task_id, TVMParallelGroupEnv* env) {
  if (env->num_task <= 1) return 0;
  int generation = atomic_load(&barrier_generation);
  if (atomic_fetch_add(&barrier_arrived, 1) == env->num_task - 1) {
    atomic_store(&barrier_arrived, 0);
    atomic_fetch_add(&barrier_generation, 1);
    __builtin_wasm_memory_atomic_notify((int*)&barrier_generation, env->num_task - 1);
  } else {
    wait_while_equal(&barrier_generation, generation);
  }
  return 0;
}
