"""Slip caches shared on S3 (``remote_cache=``): built once in a job, downloaded elsewhere.

:class:`RemoteCache` stores caches by content name under an ``s3://`` prefix with a
completion marker written last (:mod:`slipstream.remote_cache.store`); transfers are
parallel, resumable and checked (:mod:`slipstream.remote_cache.transfer`);
:func:`obtain_cache` chooses between using, downloading, and building plus uploading
(:mod:`slipstream.remote_cache.obtain`). Needs boto3 (``pip install 'slipstream[s3]'``).
"""

from slipstream.remote_cache.obtain import (
    build_or_fetch,
    global_rank,
    obtain_cache,
    sync_remote,
    wait_for_marker,
)
from slipstream.remote_cache.store import RemoteCache
from slipstream.remote_cache.transfer import RemoteCacheError

__all__ = [
    "RemoteCache",
    "RemoteCacheError",
    "build_or_fetch",
    "global_rank",
    "obtain_cache",
    "sync_remote",
    "wait_for_marker",
]
