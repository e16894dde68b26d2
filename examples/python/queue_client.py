# Python's documented remote manager client (the multiprocessing docs,
# "Using a remote manager"), unchanged but for taking its address, authkey
# and what to do from the command line.  It works the same against
# examples/remote_server.cpp (a C++ server) as against queue_server.py.
#   python3 queue_client.py HOST PORT AUTHKEY put ITEM...
#   python3 queue_client.py HOST PORT AUTHKEY get COUNT
import sys
from multiprocessing.managers import BaseManager


class QueueManager(BaseManager):
    pass


QueueManager.register('get_queue')
host, port, authkey, mode, *rest = sys.argv[1:]
m = QueueManager(address=(host, int(port)), authkey=authkey.encode())
m.connect()
queue = m.get_queue()
if mode == 'put':
    for item in rest:
        queue.put(item)
        print('put', repr(item))
else:
    for _ in range(int(rest[0])):
        print('got', repr(queue.get()))
print('qsize', queue.qsize())
