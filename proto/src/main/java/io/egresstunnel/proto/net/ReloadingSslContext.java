package io.egresstunnel.proto.net;

import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An {@link SslContext} that follows its certificate, key and CA files: rotation without restart.
 *
 * <p>The first context is built by {@link #load}, which fails loudly, naming the files, if it
 * cannot be built. After {@link #start} the files are polled at a fixed interval. Changes are
 * detected by a SHA-256 digest of the files' contents, not by modification times: Kubernetes
 * updates a mounted secret by swapping the {@code ..data} symlink, and mtimes can be coarse. Only
 * when the digest changes is the context rebuilt. On success the new context replaces the old one
 * and the change is logged at INFO; on failure (a half-written file, a key that does not match the
 * certificate, an unreadable or oversized file) the old context stays in service, the reason is
 * logged at WARN once per distinct content, and the next poll tries again.
 *
 * <p>{@link #current()} is a volatile read, cheap enough to call for every accepted connection on
 * an event loop. A replaced context only affects connections created afterwards: an {@link
 * SslHandler} created earlier keeps its {@code SSLEngine}, so established streams are untouched and
 * keep the certificate they were handshaken with.
 *
 * <p>Files are read whole with {@code java.nio} and closed at once; no handle is held between
 * polls. Each file may be at most {@link #MAX_FILE_SIZE} bytes. Before the builder runs, the
 * contents are sanity-checked: if one of the files holds an unencrypted PKCS#8 private key ({@code
 * BEGIN PRIVATE KEY}), one of the certificates in the files must carry its public key (the JDK
 * provider's {@code SslContextBuilder} accepts a mismatched pair and only fails handshakes later).
 * Keys in other encodings are left to the builder.
 *
 * <p>Builders should return contexts that need no explicit release ({@code SslContextBuilder.build}
 * does; the {@code OPENSSL_REFCNT} provider does not): a replaced context is simply dropped, since
 * connections created from it may still be using it.
 *
 * <p>Thread safety: {@link #current()} and {@link #newHandler} may be called from any thread;
 * reloads are serialized. A poll that finds a reload already running skips its turn, so the
 * scheduler never waits for a lock.
 */
public final class ReloadingSslContext implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(ReloadingSslContext.class);

  /** The largest certificate, key or CA file accepted: 1 MiB. */
  public static final int MAX_FILE_SIZE = 1024 * 1024;

  private static final Pattern PEM_BLOCK =
      Pattern.compile(
          "-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\\s]*?)-----END \\1-----", Pattern.DOTALL);

  /** Builds a context from the files; may throw anything, which counts as a failed load. */
  @FunctionalInterface
  public interface ContextBuilder {
    SslContext build() throws Exception;
  }

  private final String description;
  private final List<Path> files;
  private final ContextBuilder builder;
  private final Duration pollInterval;
  private final ReentrantLock reloadLock = new ReentrantLock();

  private volatile SslContext current;
  private volatile String lastFailure;

  // Guarded by reloadLock.
  private Snapshot loaded;
  private String lastFailureKey;

  // Guarded by this.
  private ScheduledFuture<?> poller;
  private boolean closed;

  private ReloadingSslContext(
      String description, List<Path> files, ContextBuilder builder, Duration pollInterval) {
    this.description = description;
    this.files = files;
    this.builder = builder;
    this.pollInterval = pollInterval;
  }

  /**
   * Builds the first context from {@code files} with {@code builder}.
   *
   * @param description what the context is for, used in log messages (e.g. "CONNECT listener TLS")
   * @param files every file the builder reads: certificate chain, key, optional CA bundle
   * @param builder builds a context from the files' current contents
   * @param pollInterval how often {@link #start} checks the files
   * @throws IllegalArgumentException naming the description and the files if the first context
   *     cannot be built
   */
  public static ReloadingSslContext load(
      String description, List<Path> files, ContextBuilder builder, Duration pollInterval) {
    if (description == null || description.isBlank()) {
      throw new IllegalArgumentException("a reloading TLS context needs a description");
    }
    if (files == null || files.isEmpty()) {
      throw new IllegalArgumentException(description + ": no certificate or key files given");
    }
    if (builder == null) {
      throw new IllegalArgumentException(description + ": no context builder given");
    }
    if (pollInterval == null || pollInterval.isNegative() || pollInterval.isZero()) {
      throw new IllegalArgumentException(description + ": the poll interval must be positive");
    }
    ReloadingSslContext ctx =
        new ReloadingSslContext(description, List.copyOf(files), builder, pollInterval);
    ctx.loadInitial();
    return ctx;
  }

  private void loadInitial() {
    reloadLock.lock();
    try {
      Snapshot snapshot;
      try {
        snapshot = Snapshot.read(files);
      } catch (IOException e) {
        throw new IllegalArgumentException(
            "cannot load " + description + " from " + files + ": " + reason(e), e);
      }
      Attempt attempt = build(snapshot);
      if (attempt.failure != null) {
        throw new IllegalArgumentException(
            "cannot load " + description + " from " + files + ": " + reason(attempt.failure),
            attempt.failure);
      }
      current = attempt.context;
      loaded = snapshot.withoutContents();
      log.info("loaded {} from {}{}", description, files, attempt.certificateSummary);
    } finally {
      reloadLock.unlock();
    }
  }

  /** The newest context that was built successfully. Never null; never blocks. */
  public SslContext current() {
    return current;
  }

  /** A handler from the {@linkplain #current() current} context. */
  public SslHandler newHandler(ByteBufAllocator alloc) {
    return current.newHandler(alloc);
  }

  /**
   * A handler from the {@linkplain #current() current} context for a connection to {@code
   * peerHost:peerPort} (client side: SNI and endpoint identification, if the context enables it).
   */
  public SslHandler newHandler(ByteBufAllocator alloc, String peerHost, int peerPort) {
    return current.newHandler(alloc, peerHost, peerPort);
  }

  public String description() {
    return description;
  }

  public List<Path> files() {
    return files;
  }

  /**
   * Why the files on disk are not the ones being served, or empty when the newest contents were
   * loaded. For health reporting.
   */
  public Optional<String> lastFailure() {
    return Optional.ofNullable(lastFailure);
  }

  /**
   * Starts polling the files every poll interval on {@code scheduler}. A poll reads and digests the
   * files (a few KiB, microseconds) and rebuilds the context only when they changed (milliseconds,
   * rarely), so a Netty {@code EventExecutorGroup} such as the acceptor group will do; prefer a
   * scheduler that is not a latency-sensitive data loop. Polls never wait for a lock.
   *
   * @return this
   * @throws IllegalStateException if already started or closed
   */
  public synchronized ReloadingSslContext start(ScheduledExecutorService scheduler) {
    if (closed) {
      throw new IllegalStateException(description + ": closed");
    }
    if (poller != null) {
      throw new IllegalStateException(description + ": already polling");
    }
    long millis = Math.max(1, pollInterval.toMillis());
    poller = scheduler.scheduleWithFixedDelay(this::poll, millis, millis, TimeUnit.MILLISECONDS);
    return this;
  }

  /** Stops polling. The last context stays {@linkplain #current() current}. Idempotent. */
  @Override
  public synchronized void close() {
    closed = true;
    if (poller != null) {
      poller.cancel(false);
    }
  }

  private void poll() {
    if (!reloadLock.tryLock()) {
      return; // a reload is running (reloadNow from another thread): this poll is redundant
    }
    try {
      reloadLocked();
    } catch (Throwable t) {
      // Never let an exception cancel the periodic task.
      log.error("{}: unexpected error while checking {} for changes", description, files, t);
    } finally {
      reloadLock.unlock();
    }
  }

  /**
   * Checks the files now and, if their contents changed, rebuilds the context. For tests and for an
   * explicit reload request (SIGHUP). Blocks while another reload runs; do not call on an event
   * loop.
   *
   * @return whether a new context is now {@linkplain #current() current}
   */
  public boolean reloadNow() {
    reloadLock.lock();
    try {
      return reloadLocked();
    } finally {
      reloadLock.unlock();
    }
  }

  private boolean reloadLocked() {
    Snapshot before;
    try {
      before = Snapshot.read(files);
    } catch (IOException e) {
      failed("unreadable: " + e, reason(e), e);
      return false;
    }
    if (before.sameContents(loaded)) {
      if (lastFailure != null) {
        log.info("{}: files are back to the loaded contents", description);
        lastFailure = null;
        lastFailureKey = null;
      }
      return false;
    }
    Attempt attempt = build(before);
    if (attempt.failure != null) {
      failed(before.hex(), reason(attempt.failure), attempt.failure);
      return false;
    }
    // The builder read the files itself: only accept its result if they did not change meanwhile,
    // or the context could mix an old certificate with a new key.
    Snapshot after;
    try {
      after = Snapshot.read(files);
    } catch (IOException e) {
      failed("unreadable: " + e, reason(e), e);
      return false;
    }
    if (!after.sameContents(before)) {
      log.debug("{}: files changed while building; the next poll retries", description);
      return false;
    }
    List<Path> changed = before.changedSince(loaded);
    current = attempt.context;
    loaded = before.withoutContents();
    lastFailure = null;
    lastFailureKey = null;
    log.info("reloaded {} from {}{}", description, changed, attempt.certificateSummary);
    return true;
  }

  private void failed(String key, String reason, Throwable cause) {
    lastFailure = reason;
    if (key.equals(lastFailureKey)) {
      log.debug("{}: still cannot reload from {}: {}", description, files, reason);
      return;
    }
    lastFailureKey = key;
    log.warn(
        "{}: cannot reload from {}; still serving the previous context: {}",
        description,
        files,
        reason);
    log.debug("{}: reload failure", description, cause);
  }

  private Attempt build(Snapshot snapshot) {
    String summary;
    try {
      summary = checkContents(snapshot);
      SslContext ctx = builder.build();
      if (ctx == null) {
        throw new IllegalStateException("the context builder returned null");
      }
      return new Attempt(ctx, summary, null);
    } catch (Exception e) {
      return new Attempt(null, "", e);
    }
  }

  /**
   * Checks that a PKCS#8 private key among the files belongs to a certificate among them. Returns a
   * summary of the certificate served (the key's, or the first one) for the log. Blocks this check
   * cannot parse are skipped: the builder is the judge of those.
   */
  private static String checkContents(Snapshot snapshot) throws GeneralSecurityException {
    List<X509Certificate> certificates = new ArrayList<>();
    byte[] pkcs8 = null;
    Path keyFile = null;
    CertificateFactory x509 = CertificateFactory.getInstance("X.509");
    for (int i = 0; i < snapshot.contents.size(); i++) {
      String text = new String(snapshot.contents.get(i), StandardCharsets.US_ASCII);
      Matcher m = PEM_BLOCK.matcher(text);
      while (m.find()) {
        String type = m.group(1);
        boolean certificate = type.endsWith("CERTIFICATE");
        if (!certificate && !(type.equals("PRIVATE KEY") && pkcs8 == null)) {
          continue;
        }
        byte[] der;
        try {
          der = Base64.getMimeDecoder().decode(m.group(2));
        } catch (IllegalArgumentException e) {
          continue;
        }
        if (!certificate) {
          pkcs8 = der;
          keyFile = snapshot.files.get(i);
          continue;
        }
        try {
          certificates.add(
              (X509Certificate) x509.generateCertificate(new ByteArrayInputStream(der)));
        } catch (GeneralSecurityException e) {
          // not ours to judge
        }
      }
    }
    if (pkcs8 == null || certificates.isEmpty()) {
      return certificates.isEmpty() ? "" : summary(certificates.get(0));
    }
    X509Certificate match = certificateOf(pkcs8, keyFile, certificates);
    if (match == null) {
      throw new GeneralSecurityException(
          "the private key in "
              + keyFile
              + " does not match any certificate in the files (first: "
              + certificates.get(0).getSubjectX500Principal().getName()
              + ")");
    }
    return summary(match);
  }

  /** The certificate whose public key verifies a signature made with the key; null if none. */
  private static X509Certificate certificateOf(
      byte[] pkcs8, Path keyFile, List<X509Certificate> certificates)
      throws GeneralSecurityException {
    byte[] nonce = new byte[32];
    new SecureRandom().nextBytes(nonce);
    boolean checkedAny = false;
    for (X509Certificate cert : certificates) {
      String keyAlgorithm = cert.getPublicKey().getAlgorithm();
      String signatureAlgorithm = signatureAlgorithm(keyAlgorithm);
      if (signatureAlgorithm == null) {
        continue;
      }
      PrivateKey key;
      try {
        key = KeyFactory.getInstance(keyAlgorithm).generatePrivate(new PKCS8EncodedKeySpec(pkcs8));
      } catch (GeneralSecurityException e) {
        continue; // a key of another algorithm than this certificate's
      }
      checkedAny = true;
      try {
        Signature signer = Signature.getInstance(signatureAlgorithm);
        signer.initSign(key);
        signer.update(nonce);
        byte[] signature = signer.sign();
        Signature verifier = Signature.getInstance(signatureAlgorithm);
        verifier.initVerify(cert.getPublicKey());
        verifier.update(nonce);
        if (verifier.verify(signature)) {
          return cert;
        }
      } catch (GeneralSecurityException e) {
        // Another curve or parameter set: not this certificate's key.
      }
    }
    if (!checkedAny) {
      // Not an algorithm we can check, or not parseable as PKCS#8 here: leave it to the builder.
      log.debug("cannot check the private key in {} against the certificates", keyFile);
      return certificates.get(0);
    }
    return null;
  }

  private static String signatureAlgorithm(String keyAlgorithm) {
    switch (keyAlgorithm) {
      case "RSA":
        return "SHA256withRSA";
      case "EC":
        return "SHA256withECDSA";
      case "EdDSA":
      case "Ed25519":
      case "Ed448":
        return "EdDSA";
      default:
        return null; // RSASSA-PSS needs parameters; others are unusual for TLS
    }
  }

  private static String summary(X509Certificate cert) {
    return " (subject "
        + cert.getSubjectX500Principal().getName()
        + ", serial "
        + cert.getSerialNumber().toString(16)
        + ", notAfter "
        + cert.getNotAfter().toInstant()
        + ")";
  }

  private static String reason(Throwable t) {
    StringBuilder sb = new StringBuilder();
    int depth = 0;
    for (Throwable c = t; c != null && depth < 8; c = c.getCause(), depth++) {
      if (sb.length() > 0) {
        sb.append("; caused by ");
      }
      sb.append(c.getClass().getSimpleName());
      if (c.getMessage() != null) {
        sb.append(": ").append(c.getMessage());
      }
    }
    return sb.toString();
  }

  @Override
  public String toString() {
    return "ReloadingSslContext(" + description + ", " + files + ")";
  }

  /** The outcome of one build: a context and a summary of its certificate, or a failure. */
  private record Attempt(SslContext context, String certificateSummary, Exception failure) {}

  /** The files' contents at one moment, with a SHA-256 digest per file. */
  private static final class Snapshot {
    final List<Path> files;
    final List<byte[]> contents;
    final List<byte[]> digests;

    private Snapshot(List<Path> files, List<byte[]> contents, List<byte[]> digests) {
      this.files = files;
      this.contents = contents;
      this.digests = digests;
    }

    static Snapshot read(List<Path> files) throws IOException {
      List<byte[]> contents = new ArrayList<>(files.size());
      List<byte[]> digests = new ArrayList<>(files.size());
      for (Path file : files) {
        byte[] bytes = readSmall(file);
        contents.add(bytes);
        digests.add(sha256().digest(bytes));
      }
      return new Snapshot(files, contents, digests);
    }

    private static byte[] readSmall(Path file) throws IOException {
      try (InputStream in = Files.newInputStream(file)) {
        byte[] bytes = in.readNBytes(MAX_FILE_SIZE + 1);
        if (bytes.length > MAX_FILE_SIZE) {
          throw new IOException(file + " is larger than " + MAX_FILE_SIZE + " bytes");
        }
        return bytes;
      }
    }

    private static MessageDigest sha256() {
      try {
        return MessageDigest.getInstance("SHA-256");
      } catch (NoSuchAlgorithmException e) {
        throw new IllegalStateException("every JVM has SHA-256", e);
      }
    }

    /** The digests only: the contents (key material) are not kept between polls. */
    Snapshot withoutContents() {
      return new Snapshot(files, List.of(), digests);
    }

    boolean sameContents(Snapshot other) {
      if (other == null || other.digests.size() != digests.size()) {
        return false;
      }
      for (int i = 0; i < digests.size(); i++) {
        if (!Arrays.equals(digests.get(i), other.digests.get(i))) {
          return false;
        }
      }
      return true;
    }

    List<Path> changedSince(Snapshot earlier) {
      List<Path> changed = new ArrayList<>();
      for (int i = 0; i < files.size(); i++) {
        if (earlier == null || !Arrays.equals(digests.get(i), earlier.digests.get(i))) {
          changed.add(files.get(i));
        }
      }
      return changed;
    }

    /** The digest of all files, for telling one failed content from another. */
    String hex() {
      MessageDigest all = sha256();
      digests.forEach(all::update);
      return HexFormat.of().formatHex(all.digest());
    }
  }
}
