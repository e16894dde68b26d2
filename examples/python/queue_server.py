# Python's documented remote manager (the multiprocessing docs, "Using a
# remote manager"), unchanged but for taking its port and authkey from the
# command line.  examples/python_queue_client.cpp is a C++ client of it.
#   python3 queue_server.py PORT AUTHKEY
import sys
from multiprocessing.managers import BaseManager
from queue import Queue

queue = Queue()


class QueueManager(BaseManager):
    pass


QueueManager.register('get_queue', callable=lambda: queue)
m = QueueManager(address=('127.0.0.1', int(sys.argv[1])), authkey=sys.argv[2].encode())
s = m.get_server()
print('serving', s.address, flush=True)
s.serve_forever()
