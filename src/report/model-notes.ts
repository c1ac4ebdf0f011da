/**
 * What the page says about each model before the numbers: the seeds' model table
 * (socket mode, how the program is told) and their advice on when to use it,
 * with where it breaks (docs/models.md keeps the same table for the API).
 */
export interface ModelNote {
  title: string;
  /** The seeds' table: socket mode and what tells the program it can go on. */
  told: string;
  use: string;
  breaks: string;
}

export const MODEL_NOTES: Record<string, ModelNote> = {
  'completion-port': {
    title: 'Completion port',
    told: 'overlapped I/O; told on completion, through one shared queue',
    use: 'A server with many connections: the seeds recommend it whenever a program manages many sockets at once. The OS moves the bytes; a few workers drain one queue, whatever the connection count.',
    breaks:
      'The seeds list no wall for it: the kernel queues completions whatever the connection count, so its cost per message should stay flat from 10 to 8,000 connections (the line below says whether it did), and its memory per connection is its receive buffer (none by default, as its receives are pooled; 8 KiB with --no-pooled).',
  },
  events: {
    title: 'Overlapped I/O with event objects',
    told: 'overlapped I/O; told on completion, by an event object per operation',
    use: 'A client or a small server with a few sockets, where a thread can wait on their events directly.',
    breaks:
      'A wait covers at most 64 events (WSA_MAXIMUM_WAIT_EVENTS), so the server opens one wait loop per 63 connections: past 64 connections every wake-up scans its array, and loops multiply.',
  },
  routines: {
    title: 'Overlapped I/O with completion routines',
    told: 'overlapped I/O; told on completion, by a callback run in an alertable wait',
    use: 'One thread that issues and finishes its own I/O (the seeds’ named-pipe server): no 64 limit, no queue to share.',
    breaks:
      'Routines run only on the thread that posted the operation, in its alertable waits: all the work stays on one thread, and a routine that blocks stalls every connection.',
  },
  blocking: {
    title: 'Blocking sockets, a thread per connection',
    told: 'blocking sockets; never told, each thread waits in its own call',
    use: 'Rapid prototyping and very simple servers with a handful of clients (the seeds’ “straightforward model”).',
    breaks:
      'Each connection costs a thread: its memory (a whole V8 isolate here, megabytes) and its start-up time. Past --max-threads clients wait in the backlog, so the report does not run it above its cap.',
  },
  nonblocking: {
    title: 'Non-blocking polling',
    told: 'non-blocking sockets; never told, the program polls every socket',
    use: 'A loop that has other work to do between sweeps and only a few sockets to look at.',
    breaks:
      'Nothing says when to call: every sweep costs a call per socket, busy or idle. Short sleeps between empty sweeps burn CPU on an idle server; long ones add their length to the first request’s latency.',
  },
  select: {
    title: 'select',
    told: 'either mode; told of readiness by a blocking select()',
    use: 'Portable code over a few sockets, where one call that waits for any of them is enough.',
    breaks:
      'A set holds 64 sockets (FD_SETSIZE), so a server runs a loop per 63 clients, and every call costs time in proportion to its set: the cost per message grows with the connection count.',
  },
  'async-select': {
    title: 'WSAAsyncSelect',
    told: 'non-blocking sockets; told of network events by window messages',
    use: 'A GUI program that already runs a message loop and has a few connections.',
    breaks:
      'Every network event becomes a message through one queue, dispatched on one thread: no 64 limit, but a queue entry and a dispatch per event, and the window procedure is the bottleneck.',
  },
  'event-select': {
    title: 'WSAEventSelect',
    told: 'non-blocking sockets; told of network events by event objects',
    use: 'A client managing a few sockets: the seeds recommend it (or overlapped I/O) there.',
    breaks:
      'A wait covers 64 events, so one wait loop per 63 sockets, and each wake-up needs an enumNetworkEvents call to learn what happened.',
  },
  sessions: {
    title: 'Session framework',
    told: 'a completion port under a session API (the seeds’ KIocp/KSocket)',
    use: 'Application servers that want per-session callbacks and bounded send queues over a completion port.',
    breaks: 'Where the completion port does, plus the cost of its per-session bookkeeping.',
  },
};
