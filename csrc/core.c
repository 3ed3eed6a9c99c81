/* core.c: status strings. */
#include "pyreg.h"

const char *pr_strerror(int status)
{
    switch (status) {
    case PR_OK: return "success";
    case PR_EINVAL: return "invalid argument (size, shape or pointer)";
    case PR_ENOMEM: return "out of memory";
    case PR_EOVERFLOW: return "size overflow";
    default: return "unknown error";
    }
}
