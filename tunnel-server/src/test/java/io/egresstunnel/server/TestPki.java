package io.egresstunnel.server;

import io.netty.pkitesting.CertificateBuilder;
import io.netty.pkitesting.X509Bundle;

/** Certificates for tests: a CA, the server's certificate for 127.0.0.1, and client ones. */
final class TestPki {
  private TestPki() {}

  static X509Bundle ca(String subject) throws Exception {
    return new CertificateBuilder()
        .subject(subject)
        .setIsCertificateAuthority(true)
        .ecp256()
        .buildSelfSigned();
  }

  /** CN=tunnel-server for 127.0.0.1 and localhost. */
  static X509Bundle server(X509Bundle ca) throws Exception {
    return new CertificateBuilder()
        .subject("CN=tunnel-server")
        .addSanIpAddress("127.0.0.1")
        .addSanDnsName("localhost")
        .addExtendedKeyUsageServerAuth()
        .ecp256()
        .buildIssuedBy(ca);
  }

  static X509Bundle client(X509Bundle ca, String subject) throws Exception {
    return new CertificateBuilder()
        .subject(subject)
        .addExtendedKeyUsageClientAuth()
        .ecp256()
        .buildIssuedBy(ca);
  }

  /** The server's certificate, key and the CA its clients must come from, as files. */
  static ServerConfig.TlsFiles serverFiles(X509Bundle server, X509Bundle clientCa)
      throws Exception {
    return new ServerConfig.TlsFiles(
        server.toTempCertChainPem().toPath(),
        server.toTempPrivateKeyPem().toPath(),
        clientCa == null ? null : clientCa.toTempRootCertPem().toPath());
  }
}
