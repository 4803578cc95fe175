"""The emitted C runtime's fixed SRAM figures, the same for every plan: buffer alignment, the runtime's
state outside the arena, and the stack reserve.

The planner's SRAM layout (:mod:`aidi.models.schedule.memory`, which re-exports these names) and the
compiled SRAM check of the design search (:func:`aidi.models.costs.fast.sram_fits`) both read them from
here, so that neither package imports the other for them.  The C runtime static-asserts
:data:`RUNTIME_STATE_BYTES`; the emitted linker script reserves :data:`STACK_BYTES`.
"""

#: stack reserved at the top of SRAM (bytes): the emitted linker script's ``__aidi_stack_reserve``.  Measured
#: (mspdebug, tests/test_emit_msp430.py): 188 B peak with the portable kernels, 200 B with the emulated LEA
#: kernels on the default network; 256 B leaves room for the call depth of TI's DSPLib.
STACK_BYTES = 256
#: the C runtime's fixed SRAM state outside the arena (``aidi_state_t``, models/emit/runtime/aidi_runtime.c;
#: MSP430 small memory model, 2-byte pointers): the fetch cache (3 pointers, 5 + 4 uint16, one uint32: 28 B)
#: and the call's state (a pointer, uint32 g, 2 uint16, uint32 known_mv2: 14 B), padded to 4-byte multiple
#: (44 B) so that the linker packs it next to the arena without a gap.  Static-asserted by the C runtime.
RUNTIME_STATE_BYTES = 44
#: buffer alignment in SRAM (bytes; LEA operands must be 32-bit aligned)
ALIGN = 4
