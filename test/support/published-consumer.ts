/**
 * What a TypeScript user of the package compiles: the documented calls, and
 * the internals the published typings (built with stripInternal) must hide.
 * `typeCheckConsumer` compiles that file in a scratch project whose
 * node_modules/overlapped is the package under test (the built tree, or the
 * packed tarball installed), and returns the diagnostics in the consumer and
 * in the package's own .d.ts files (third-party typings are not ours to fix).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

export const CONSUMER = `
import {
  CompletionPort,
  EchoServer,
  listenTcp,
  connectTcp,
  Overlapped,
  PipeClient,
  PipeConnection,
  PipeListener,
  PipeServer,
  startEchoServer,
  TcpListener,
  TcpSocket,
  chooseEngine,
  type EngineOption,
} from 'overlapped';

export async function documented(): Promise<void> {
  const byName: EngineOption = 'node';
  const listener = await listenTcp({ port: 0, engine: 'node' });
  await TcpListener.listen({ port: 0, engine: 'uring' });
  await TcpListener.listen({ port: 0, engine: chooseEngine('node').engine });
  await TcpListener.listen({ port: 0 });
  connectTcp({ port: listener.address.port, engine: byName }, new Overlapped());
  TcpSocket.connect({ port: 1 }, new Overlapped());
  await EchoServer.start({ port: 0 });
  await startEchoServer({ port: 0, engine: 'uring', model: 'routines' });
  await PipeServer.start({ name: 'p', engine: 'node' });
  await PipeListener.listen({ path: '/tmp/p.sock' });
  PipeConnection.connect({ path: '/tmp/p.sock' }, new Overlapped());
  await PipeClient.connect('p', { engine: 'uring', timeoutMs: 10 });
}

export function hidden(ov: Overlapped, port: CompletionPort<string>, conn: PipeConnection, socket: TcpSocket): void {
  // @ts-expect-error internal
  ov.begin;
  // @ts-expect-error internal
  ov.finish;
  // @ts-expect-error internal
  ov.settle;
  // @ts-expect-error internal
  port.enqueue;
  // @ts-expect-error internal
  port.dispatch;
  // @ts-expect-error internal
  port.wait;
  // @ts-expect-error internal
  conn.sendControl;
  // @ts-expect-error internal
  conn.closeWithError;
  // @ts-expect-error internal
  socket.operationDone;
  // @ts-expect-error internal
  TcpSocket.fromStream;
  // @ts-expect-error sockets come from accept or connect
  new TcpSocket();
  // @ts-expect-error connections come from accept or connect
  new PipeConnection();
  // @ts-expect-error not an engine
  void listenTcp({ port: 0, engine: 'epoll' });
}
`;

/**
 * Type-checks CONSUMER as `project`/consumer.ts, where `project` has a
 * package.json of type module and node_modules/overlapped; `typeRoots` holds
 * @types/node. Returns one line per diagnostic (none when it compiles).
 */
export function typeCheckConsumer(project: string, typeRoots: string): string[] {
  writeFileSync(join(project, 'package.json'), '{ "type": "module" }\n', { flag: 'wx' });
  const file = join(project, 'consumer.ts');
  writeFileSync(file, CONSUMER);
  const program = ts.createProgram([file], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    types: ['node'],
    typeRoots: [typeRoots],
    skipLibCheck: false,
    skipDefaultLibCheck: true,
  });
  const ours = ts.sys.realpath?.(join(project, 'node_modules', 'overlapped', 'dist', 'src')) ?? '';
  return ts
    .getPreEmitDiagnostics(program)
    .filter(
      (d) => d.file === undefined || d.file.fileName === file || d.file.fileName.startsWith(ours),
    )
    .map((d) => {
      const where =
        d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
      return `${d.file?.fileName ?? ''}:${where ? where.line + 1 : ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
}
