// Linked into the Windows test executables by scripts/windows-tests.sh, never into anything
// shipped. Wine 8 (Debian 12) answers SetFileInformationByHandle(FileAllocationInfo) with
// ERROR_CALL_NOT_IMPLEMENTED. Two callers need it: qdrant-edge's WAL preallocates its segments
// that way (through fs4), and Rust's std truncates an existing file that way in File::create.
// This object defines the import slot the executables call through
// (`__imp_SetFileInformationByHandle`) and the plain symbol, so the linker takes them instead
// of kernel32's: every call goes to the real function, and only its refusal of that one class
// is replaced by what Windows does (below). Windows implements the class, so there the real
// answer always stands.
#include <windows.h>

typedef BOOL(WINAPI *set_information_fn)(HANDLE, FILE_INFO_BY_HANDLE_CLASS, LPVOID, DWORD);

static BOOL WINAPI set_information_unless_unimplemented_allocation(
    HANDLE file, FILE_INFO_BY_HANDLE_CLASS class, LPVOID info, DWORD size) {
    static set_information_fn real;
    if (!real) {
        real = (set_information_fn)(void (*)(void))GetProcAddress(
            GetModuleHandleA("kernel32.dll"), "SetFileInformationByHandle");
        if (!real) {
            SetLastError(ERROR_PROC_NOT_FOUND);
            return FALSE;
        }
    }
    if (real(file, class, info, size)) return TRUE;
    if (class != FileAllocationInfo || GetLastError() != ERROR_CALL_NOT_IMPLEMENTED
        || size < sizeof(FILE_ALLOCATION_INFO)) {
        return FALSE;
    }
    // What Windows does with an allocation size: below the end of the file it cuts the file
    // there (Rust's std truncates that way in File::create), above it it reserves space, which
    // changes nothing anyone reads.
    LARGE_INTEGER end;
    if (!GetFileSizeEx(file, &end)) return FALSE;
    LONGLONG wanted = ((FILE_ALLOCATION_INFO *)info)->AllocationSize.QuadPart;
    if (wanted < end.QuadPart) {
        FILE_END_OF_FILE_INFO cut;
        cut.EndOfFile.QuadPart = wanted;
        return real(file, FileEndOfFileInfo, &cut, sizeof cut);
    }
    SetLastError(ERROR_SUCCESS);
    return TRUE;
}

set_information_fn __imp_SetFileInformationByHandle = set_information_unless_unimplemented_allocation;

// Code that calls the function by its plain name (without dllimport) comes here too, so that
// nothing pulls kernel32's definitions of either symbol into the link.
BOOL WINAPI call_through_slot(HANDLE file, FILE_INFO_BY_HANDLE_CLASS class, LPVOID info, DWORD size)
    __asm__("SetFileInformationByHandle");
BOOL WINAPI call_through_slot(HANDLE file, FILE_INFO_BY_HANDLE_CLASS class, LPVOID info, DWORD size) {
    return __imp_SetFileInformationByHandle(file, class, info, size);
}
