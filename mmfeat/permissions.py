"""Whether a folder is this user's to trust: who else may write into it."""

from __future__ import annotations

import os
import stat


def others_may_write(folder) -> str | None:
    """Why users other than this one, root and the members of this user's groups may write
    ``folder`` (what they put there could be anyone's), or None when they may not.

    A group-shared folder (group-writable, of a group of this user's) is trusted whoever owns
    it: that is how a store is shared.
    """
    st = os.stat(folder)
    groups = set(os.getgroups()) | {os.getegid()}
    group_shared = bool(st.st_mode & stat.S_IWGRP) and st.st_gid in groups
    if st.st_mode & stat.S_IWOTH:
        return "is world-writable"
    if st.st_mode & stat.S_IWGRP and st.st_gid not in groups:
        return f"is writable by group {st.st_gid}, which is not one of this user's"
    if st.st_uid not in (os.geteuid(), 0) and not group_shared:
        return f"is owned by another user (uid {st.st_uid})"
    return None
