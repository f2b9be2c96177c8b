//! The unwinder, left out. With `panic = "abort"` nothing ever unwinds, and the build strips
//! `.eh_frame` (.ci/build-static), so the only callers std keeps — its backtrace printer, the
//! personality routine and landing pads, all reached from a panic, which aborts PID 1 — would
//! find no frames anyway. Defining the entry points here keeps the linker from pulling
//! libunwind.a, and a walk that never calls back lets LTO drop all the printer would have done
//! with the frames (DWARF parsing, demangling, decompression): 495 KB -> 218 KB. A panic still
//! prints its message and aborts; the backtrace is empty, as it already was without .eh_frame.
//! Anything that would resume an unwind aborts.

use std::ffi::c_void;

const END_OF_STACK: i32 = 5;

#[no_mangle]
extern "C" fn _Unwind_Backtrace(_trace: *const c_void, _arg: *mut c_void) -> i32 {
    END_OF_STACK
}
#[no_mangle]
extern "C" fn _Unwind_Resume(_exception: *mut c_void) -> ! {
    std::process::abort()
}
#[no_mangle]
extern "C" fn _Unwind_GetIP(_ctx: *mut c_void) -> usize {
    0
}
#[no_mangle]
extern "C" fn _Unwind_GetIPInfo(_ctx: *mut c_void, before: *mut i32) -> usize {
    if !before.is_null() {
        // SAFETY: the caller passes a valid int, or null.
        unsafe { *before = 0 };
    }
    0
}
#[no_mangle]
extern "C" fn _Unwind_GetDataRelBase(_ctx: *mut c_void) -> usize {
    0
}
#[no_mangle]
extern "C" fn _Unwind_GetTextRelBase(_ctx: *mut c_void) -> usize {
    0
}
#[no_mangle]
extern "C" fn _Unwind_GetRegionStart(_ctx: *mut c_void) -> usize {
    0
}
#[no_mangle]
extern "C" fn _Unwind_GetLanguageSpecificData(_ctx: *mut c_void) -> *mut c_void {
    std::ptr::null_mut()
}
#[no_mangle]
extern "C" fn _Unwind_SetGR(_ctx: *mut c_void, _reg: i32, _value: usize) {}
#[no_mangle]
extern "C" fn _Unwind_SetIP(_ctx: *mut c_void, _value: usize) {}
