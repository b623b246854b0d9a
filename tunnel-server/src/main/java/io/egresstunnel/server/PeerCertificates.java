package io.egresstunnel.server;

import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.ssl.SslHandler;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import javax.naming.InvalidNameException;
import javax.naming.ldap.LdapName;
import javax.net.ssl.SSLPeerUnverifiedException;

/** The client certificate a TLS handshake verified, and the name in it. */
public final class PeerCertificates {
  private PeerCertificates() {}

  /** The verified client certificate of the channel, or null (no TLS, or no certificate). */
  public static X509Certificate of(ChannelHandlerContext ctx) {
    return of(ctx.channel());
  }

  /** As {@link #of(ChannelHandlerContext)}; an HTTP/2 stream's is its connection's. */
  public static X509Certificate of(io.netty.channel.Channel ch) {
    while (ch.parent() != null && ch.pipeline().get(SslHandler.class) == null) {
      ch = ch.parent();
    }
    SslHandler tls = ch.pipeline().get(SslHandler.class);
    if (tls == null) {
      return null;
    }
    try {
      Certificate[] chain = tls.engine().getSession().getPeerCertificates();
      return chain.length > 0 && chain[0] instanceof X509Certificate x ? x : null;
    } catch (SSLPeerUnverifiedException e) {
      return null;
    }
  }

  /** The most specific CN of the certificate's subject, or null. */
  public static String commonName(X509Certificate cert) {
    try {
      var rdns = new LdapName(cert.getSubjectX500Principal().getName()).getRdns();
      for (int i = rdns.size() - 1; i >= 0; i--) {
        if (rdns.get(i).getType().equalsIgnoreCase("CN")) {
          return rdns.get(i).getValue().toString();
        }
      }
      return null;
    } catch (InvalidNameException e) {
      return null;
    }
  }
}
