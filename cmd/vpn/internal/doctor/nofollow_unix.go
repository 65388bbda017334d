package doctor

import "syscall"

// noFollow: a bundle is never written through a symlink someone planted.
const noFollow = syscall.O_NOFOLLOW
