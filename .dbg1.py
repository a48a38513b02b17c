import threading, faulthandler, sys
faulthandler.dump_traceback_later(20, exit=True)
import binder
from binder.client import BinderClient, Parcel
from binder.servicemanager import ServiceManager, add_service, get_service
from ownership.bindings import Kernel
from binder import uapi as u
k = Kernel()
binder.register(k)
smt = k.spawn_process("sm")
sm = BinderClient(smt)
mgr = ServiceManager(sm)
print("sm ready")
th = threading.Thread(target=sm.loop, daemon=True); th.start()
import time; time.sleep(0.2)
p = sm.file.private_data.get()
with p.inner.lock() as g:
    print("sm threads", list(g.data.threads.keys()), "ready", g.data.ready_threads, "work", g.data.work)
svc = BinderClient(k.spawn_process("svc"))
svc.add_object(0x10, lambda c, t: Parcel())
out = svc._transaction_cmd(u.BC_TRANSACTION, 0, 3, Parcel().write_str("x").write_strong_binder(0x10), 0)
print("consumed", svc.send(out))
time.sleep(0.2)
print("events sm", sm.events)
q = svc.file.private_data.get()
with q.inner.lock() as g:
    for t in g.data.threads.values():
        with t.inner.lock() as tg:
            print("svc thread", t, list(tg.data.work_list), tg.data.process_work_list, tg.data.current_transaction)
with p.inner.lock() as g:
    print("sm work", g.data.work, g.data.ready_threads)
