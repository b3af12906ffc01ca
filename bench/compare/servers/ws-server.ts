/** ws in one process: `node ws-server.ts --port N [--deflate]`. */
import { exitOnSignals, serverArgs, startWsServer } from './ws-app.ts';

const { port, deflate } = serverArgs(process.argv);
exitOnSignals();
startWsServer(port, deflate);
