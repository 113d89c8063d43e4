/* hoplink.pml: the armbus hop link (bus/link.py, table bus/linktable.py) as a Promela model, for spin.

   Mapping to the code
   -------------------
   proctype A    the sending endpoint: LinkEndpoint with packets to send (send(), _transmit, _do_acked,
                 _do_retransmit, _do_give_up_data, _begin_reset, _do_accept_reset, _do_answer_reset, _do_opened).
   proctype B    the receiving endpoint, which may reboot at any moment (a fresh LinkEndpoint): _do_deliver,
                 _do_reack, _do_resync (out of window), the same RESET/RESET_ACK handling, SYNCING drops.
   a2b, b2a      the two directions of the wire: FIFO channels. xmit() loses a frame (LOSSES times at most: a
                 lost or corrupted frame, since the CRC turns corruption into loss), duplicates it (DUPS times),
                 or delivers it. A full channel loses the frame.
   timers        fire when nothing else can happen (spin's timeout): a real timer is set longer than a round trip.
                 A retransmission that went out early anyway looks to the receiver like a duplicated frame, which
                 the channel produces. RETRIES retransmissions, then the frame is given up (DeliveryFailed) and the
                 link resets; a RESET given up leads to DOWN, where the remaining packets fail at once.
   reboots       B may reboot whenever a frame is on its way to it, or when the system is idle. After a reboot it
                 drops everything until both directions are empty (the boot silence, LinkConfig.boot_quiet_ns),
                 then sends its RESET.
   SEQ, NONCES   the 8-bit sequence number and nonce, shrunk to 3 values (stop-and-wait needs exactly 3 to tell
                 expected, previous and out-of-window apart).
   heard         _heard_since_reset: a DATA/ACK arrived since the last RESET we answered (copy detection).
   open on RESET an endpoint that is SYNCING or DOWN and answers a new RESET opens at once (_do_accept_reset):
                 the peer's handshake has zeroed both sides, and its own RESET, withdrawn, is not sent again.
   reboot nonce  a rebooted B draws any nonce except the one A answered last (the assumption stated in
                 docs/hoplink.md: with random 8-bit nonces it fails once in 256 reboots; -DNONCE_MAY_REPEAT drops
                 it, and spin then finds the residual risk described there).

   next          packets are numbered in the order they leave A's send queues (LinkEndpoint._start_next). An
                 urgent send (send(..., urgent=True), an ESTOP) only changes which queued packet leaves next: it is
                 not a different kind of frame, so the model covers it as it is. That ordinary packets keep their
                 send order and urgent ones go first is the queue discipline above the line, tested in
                 tests/link/test_link_urgent.py. While an urgent packet waits, the code repeats the frame in
                 flight early and gives it up after two timeouts: an early repeat is a duplicate (the channel
                 makes those), and the early give-up is the give-up modelled here, taken sooner.

   Properties (asserts; plus spin's invalid-end-state check for deadlock):
   - delivered ids are strictly increasing in the order packets left the queues: no duplicate, no reordering;
   - an ACK closes a packet only if B delivered it (no spurious ack, the MIN bug);
   - when A is done, every packet was acked or reported failed, so none is lost without a report.

   Broken variants, each must fail verification: -DBROKEN_NO_DEDUP (B delivers retransmissions again),
   -DBROKEN_RESET_COPIES (a copy of a RESET resets again), -DBROKEN_SYNC_ACCEPT (SYNCING accepts DATA),
   -DBROKEN_NO_BOOT_QUIET with -DREBOOTS=2 (a rebooted B opens on a stale RESET_ACK from an earlier life).
*/

#ifndef N
#define N        2      /* packets A sends */
#endif
#ifndef SEQ
#define SEQ      3
#endif
#ifndef NONCES
#define NONCES   3
#endif
#ifndef RETRIES
#define RETRIES  1
#endif
#ifndef LOSSES
#define LOSSES   2
#endif
#ifndef DUPS
#define DUPS     1
#endif
#ifndef REBOOTS
#define REBOOTS  1
#endif
#ifndef CAP
#define CAP      2
#endif
#define NONE     255

#define SYNCING  0
#define OPEN     1
#define DOWN     2

mtype = { DATA, ACK, RESET, RESET_ACK };

chan a2b = [CAP] of { mtype, byte, byte };
chan b2a = [CAP] of { mtype, byte, byte };

byte losses = LOSSES;
byte dups = DUPS;
bool delivered[N];
bool acked[N];
bool failed[N];
byte last_delivered = NONE;
bool a_done = false;

inline xmit(ch, k, s, m) {
  if
  :: full(ch) -> skip
  :: nfull(ch) ->
     if
     :: ch!k,s,m
     :: losses > 0 -> losses--
     :: dups > 0 && len(ch) < CAP - 1 -> dups--; ch!k,s,m; ch!k,s,m
     fi
  fi
}

inline deliver(m) {
  assert(last_delivered == NONE || m > last_delivered);
  last_delivered = m;
  delivered[m] = true
}

byte a_peer_nonce = NONE;   /* A's _peer_nonce: global only so that B's reboot can state the nonce assumption */

proctype A() {
  byte state = SYNCING, tx = 0, nonce = 0, tries = 0;
  bool heard = false;
  byte next = 0, inflight = NONE, k, s, m;

  xmit(a2b, RESET, nonce, 0);
  do
  :: atomic { b2a?k,s,m ->
     if
     :: k == ACK ->
        heard = true;
        if
        :: state == OPEN && inflight != NONE && s == tx ->
           assert(delivered[inflight]);
           acked[inflight] = true; inflight = NONE; tx = (tx + 1) % SEQ; tries = 0
        :: else -> skip
        fi
     :: k == DATA -> heard = true
     :: k == RESET ->
        if
#ifndef BROKEN_RESET_COPIES
        :: s == a_peer_nonce && !heard -> skip        /* a copy: answer, touch nothing */
#endif
        :: else ->
           a_peer_nonce = s; heard = false;
           if
           :: state == OPEN ->
              if
              :: inflight != NONE -> failed[inflight] = true; inflight = NONE
              :: else -> skip
              fi;
              tx = 0; tries = 0
           :: else -> state = OPEN; tries = 0     /* SYNCING/DOWN: the peer's handshake opens us too */
           fi
        fi;
        xmit(a2b, RESET_ACK, s, 0)
     :: k == RESET_ACK ->
        if
        :: state != OPEN && s == nonce -> state = OPEN; tries = 0
        :: else -> skip
        fi
     fi }
  :: state == OPEN && inflight == NONE && next < N ->
     inflight = next; next++; tries = 0;
     xmit(a2b, DATA, tx, inflight)
  :: timeout && state == OPEN && inflight != NONE && tries < RETRIES ->
     tries++; xmit(a2b, DATA, tx, inflight)
  :: timeout && state == OPEN && inflight != NONE && tries == RETRIES ->
     failed[inflight] = true; inflight = NONE;                /* DeliveryFailed(RETRIES), then reset */
     state = SYNCING; tx = 0; tries = 0; nonce = (nonce + 1) % NONCES;
     xmit(a2b, RESET, nonce, 0)
  :: timeout && state == SYNCING && tries < RETRIES -> tries++; xmit(a2b, RESET, nonce, 0)
  :: timeout && state == SYNCING && tries == RETRIES -> state = DOWN
  :: state == DOWN && next < N -> failed[next] = true; next++
  :: (state == DOWN || (state == OPEN && inflight == NONE)) && next == N -> break
  od;
  a_done = true;
  byte i = 0;
  do
  :: i < N -> assert(acked[i] || failed[i]); i++
  :: else -> break
  od
}

proctype B() {
  byte state, rx, nonce = 1, peer_nonce, tries, k, s, m;
  bool heard;
  byte reboots = REBOOTS;

boot:
  state = SYNCING; rx = 0; peer_nonce = NONE; heard = false; tries = 0;
#ifndef BROKEN_NO_BOOT_QUIET
  do          /* boot silence (boot_quiet_ns): every frame of the previous life leaves the line */
  :: a2b?k,s,m -> skip
  :: empty(a2b) && (empty(b2a) || a_done) -> break
  od;
#endif
  xmit(b2a, RESET, nonce, 0);
end:
  do
  :: atomic { a2b?k,s,m ->
     if
     :: k == DATA ->
        heard = true;
        if
        :: state == OPEN && s == rx -> deliver(m); xmit(b2a, ACK, s, 0); rx = (rx + 1) % SEQ
        :: state == OPEN && s == (rx + SEQ - 1) % SEQ ->
#ifdef BROKEN_NO_DEDUP
           deliver(m);
#endif
           xmit(b2a, ACK, s, 0)
        :: state == OPEN && s != rx && s != (rx + SEQ - 1) % SEQ ->
           state = SYNCING; rx = 0; tries = 0; nonce = (nonce + 1) % NONCES;   /* out of window: reset */
           xmit(b2a, RESET, nonce, 0)
#ifdef BROKEN_SYNC_ACCEPT
        :: state != OPEN && s == rx -> deliver(m); xmit(b2a, ACK, s, 0); rx = (rx + 1) % SEQ
#endif
        :: state != OPEN -> skip
        fi
     :: k == ACK -> heard = true
     :: k == RESET ->
        if
#ifndef BROKEN_RESET_COPIES
        :: s == peer_nonce && !heard -> skip
#endif
        :: else -> peer_nonce = s; heard = false;
           if
           :: state == OPEN -> rx = 0
           :: else -> state = OPEN; tries = 0     /* SYNCING/DOWN: the peer's handshake opens us too */
           fi
        fi;
        xmit(b2a, RESET_ACK, s, 0)
     :: k == RESET_ACK ->
        if
        :: state != OPEN && s == nonce -> state = OPEN; tries = 0
        :: else -> skip
        fi
     fi }
  :: timeout && state == SYNCING && tries < RETRIES -> tries++; xmit(b2a, RESET, nonce, 0)
  :: timeout && state == SYNCING && tries == RETRIES -> state = DOWN
  :: reboots > 0 && (nempty(a2b) || timeout) ->                                   /* power cycle: all link state is lost */
     reboots--;
pick:
     select (nonce : 0 .. NONCES - 1);
#ifndef NONCE_MAY_REPEAT
     if
     :: nonce == a_peer_nonce -> goto pick   /* the assumption: not the nonce A answered last */
     :: else -> skip
     fi;
#endif
     goto boot
  od
}

init {
  atomic { run A(); run B() }
}
