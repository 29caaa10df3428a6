// dist-vnf: one DiST VNF instance. `dist-vnf <EAL options> -- <options>`.
// Start-up (arguments, signatures, EAL, ports, the transfer lcore, the sockets) is VNFApp.start;
// the main lcore then serves the sockets and forwards events and notices until a signal.
let app = VNFApp.start(arguments: CommandLine.arguments)
app.launch()
app.run()
app.stop()
