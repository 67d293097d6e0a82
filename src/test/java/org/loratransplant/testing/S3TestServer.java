package org.loratransplant.testing;

import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;
import org.apache.hadoop.conf.Configuration;
import org.gaul.s3proxy.BlobStores;
import org.gaul.s3proxy.S3Proxy;
import org.gaul.s3proxy.auth.AuthenticationType;
import org.gaul.s3proxy.blobstore.BlobStore;

/**
 * A real S3 API server (S3Proxy) on 127.0.0.1 with a random port, backed by a directory, with
 * one bucket; {@link #configure} points a Hadoop configuration's s3a:// at it.
 */
public final class S3TestServer implements AutoCloseable {
  public static final String KEY = "lt-test-key";
  public static final String SECRET = "lt-test-secret";
  private final S3Proxy proxy;
  private final BlobStore store;
  private final String bucket;

  public S3TestServer(Path baseDir, String bucket) throws Exception {
    Files.createDirectories(baseDir);
    Properties props = new Properties();
    props.setProperty("jclouds.filesystem.basedir", baseDir.toString());
    props.setProperty("jclouds.identity", "identity");
    props.setProperty("jclouds.credential", "credential");
    store = BlobStores.create("filesystem", props);
    store.createContainer(bucket);
    this.bucket = bucket;
    proxy = S3Proxy.builder().blobStore(store).endpoint(URI.create("http://127.0.0.1:0"))
        .awsAuthentication(AuthenticationType.AWS_V2_OR_V4, KEY, SECRET).build();
    proxy.start();
    for (int i = 0; i < 100 && !proxy.getState().equals("STARTED"); i++) {
      Thread.sleep(20);
    }
  }

  public String endpoint() {
    return "http://127.0.0.1:" + proxy.getPort();
  }

  public String bucketUri() {
    return "s3a://" + bucket;
  }

  public void configure(Configuration conf) {
    conf.set("fs.s3a.endpoint", endpoint());
    conf.set("fs.s3a.path.style.access", "true");
    conf.set("fs.s3a.connection.ssl.enabled", "false");
    conf.set("fs.s3a.access.key", KEY);
    conf.set("fs.s3a.secret.key", SECRET);
    conf.set("fs.s3a.aws.credentials.provider",
        "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider");
    conf.set("fs.s3a.endpoint.region", "us-east-1");
    conf.set("fs.s3a.change.detection.mode", "none");
  }

  @Override
  public void close() throws Exception {
    proxy.stop();
    store.close();
  }
}
