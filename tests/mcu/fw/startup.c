/* Minimal Cortex-M7 startup for QEMU mps2-an500 with newlib + semihosting
 * (librdimon, linked with -nostartfiles). */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __bss_start__[], __bss_end__[], __stack_top[];
extern int main(void);
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);

void _init(void) {}
void _fini(void) {}

static void semihost_write0(const char* s) {
  register uint32_t r0 __asm__("r0") = 0x04; /* SYS_WRITE0 */
  register const char* r1 __asm__("r1") = s;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

static void semihost_exit_failure(void) {
  register uint32_t r0 __asm__("r0") = 0x18;    /* SYS_EXIT */
  register uint32_t r1 __asm__("r1") = 0x20023; /* ADP_Stopped_RunTimeErrorUnknown */
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  for (;;) {
  }
}

void Fault_Handler(void) {
  semihost_write0("FAIL: fault exception\n");
  semihost_exit_failure();
}

void Reset_Handler(void) {
  /* Enable the FPU (CP10, CP11 full access) before any FP instruction. */
  volatile uint32_t* cpacr = (volatile uint32_t*)0xE000ED88u;
  *cpacr |= 0xFu << 20;
  __asm__ volatile("dsb\n isb" ::: "memory");
  /* Enable usage/bus/mem fault exceptions so bugs do not all become HardFault. */
  volatile uint32_t* shcsr = (volatile uint32_t*)0xE000ED24u;
  *shcsr |= 0x7u << 16;
  for (uint32_t* p = __bss_start__; p < __bss_end__; ++p) *p = 0;
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Fault_Handler, /* SVC */
    Fault_Handler, /* DebugMon */
    0,
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick */
};
