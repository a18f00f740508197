// The seed article's payment-notification handler, run as a peer to measure (see README.md).
//
// HandlePayNotify below is the article's code as written, flaws included. The article does not
// show PayCallbackRequest, GetOrderByOutTradeNo, VerifySign, UpdateOrderToPaid or the wiring;
// they are filled in here as plainly as the article's calls suggest.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"log"
	"net/url"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
)

// PayCallbackRequest is the Alipay notification form as the handler binds it.
type PayCallbackRequest struct {
	OutTradeNo  string `form:"out_trade_no" binding:"required"`
	TradeNo     string `form:"trade_no"`
	TradeStatus string `form:"trade_status"`
	TotalAmount string `form:"total_amount"`
	AppID       string `form:"app_id"`
	Sign        string `form:"sign"`
	SignType    string `form:"sign_type"`
	// Params holds every posted parameter: Alipay's signature covers them all, not only the
	// bound fields. Not in the article (it does not show VerifySign); see README.md.
	Params url.Values `form:"-"`
}

// Order is a row of the orders table.
type Order struct {
	OutTradeNo  string
	AmountMinor int64
	Status      string
}

var (
	redisClient *redis.Client
	db          *sql.DB
	dbDelay     time.Duration
)

func HandlePayNotify(c *gin.Context) {
	var req PayCallbackRequest
	if err := c.ShouldBind(&req); err != nil {
		c.String(400, "INVALID_REQUEST")
		return
	}
	req.Params = c.Request.PostForm // added: VerifySign needs all parameters (README.md)

	// 1. 查询订单是否存在且已支付
	order, err := GetOrderByOutTradeNo(req.OutTradeNo)
	if err != nil || order == nil {
		c.String(400, "ORDER_NOT_FOUND")
		return
	}
	if order.Status == "paid" {
		c.String(200, "SUCCESS") // 已处理,直接返回
		return
	}

	// 2. 加分布式锁防止并发
	lockKey := "lock:pay:" + req.OutTradeNo
	locked, _ := redisClient.SetNX(context.Background(), lockKey, "1", time.Second*5).Result()
	if !locked {
		c.String(200, "SUCCESS") // 竞争失败,视为已处理
		return
	}
	defer redisClient.Del(context.Background(), lockKey)

	// 3. 验证签名并更新订单
	if !VerifySign(req) {
		c.String(400, "SIGN_INVALID")
		return
	}

	UpdateOrderToPaid(req.OutTradeNo)
	c.String(200, "SUCCESS")
}

// GetOrderByOutTradeNo reads one order; (nil, err) when there is none or the query failed.
func GetOrderByOutTradeNo(outTradeNo string) (*Order, error) {
	var o Order
	err := db.QueryRow(
		"SELECT out_trade_no, amount_minor, status FROM orders WHERE out_trade_no = $1",
		outTradeNo,
	).Scan(&o.OutTradeNo, &o.AmountMinor, &o.Status)
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// UpdateOrderToPaid marks the order paid, unconditionally, and ignores errors as the article's
// caller does. The payment_effects insert is our instrumentation: it stands for the business
// side effect (shipping, crediting) that paying an order sets off, so a duplicate is countable.
func UpdateOrderToPaid(outTradeNo string) {
	if dbDelay > 0 { // a slow database, for the lock-TTL scenario (flag -db-delay)
		_, _ = db.Exec("SELECT pg_sleep($1)", dbDelay.Seconds())
	}
	_, _ = db.Exec("UPDATE orders SET status = 'paid', paid_at = now() WHERE out_trade_no = $1",
		outTradeNo)
	_, _ = db.Exec("INSERT INTO payment_effects (out_trade_no) VALUES ($1)", outTradeNo)
}

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	listen := flag.String("listen", env("SEED_LISTEN", "127.0.0.1:8080"), "address to serve on")
	dsn := flag.String("dsn", env("SEED_DSN", "postgres://127.0.0.1:5432/paynotify"), "PostgreSQL DSN")
	redisAddr := flag.String("redis", env("SEED_REDIS", "127.0.0.1:6379"), "Redis address")
	keyPath := flag.String("alipay-public-key", env("SEED_ALIPAY_PUBLIC_KEY", ""), "Alipay public key (PEM)")
	flag.DurationVar(&dbDelay, "db-delay", 0, "sleep this long in the database before the update")
	flag.Parse()

	if err := loadAlipayPublicKey(*keyPath); err != nil {
		log.Fatalf("alipay public key: %v", err)
	}
	var err error
	if db, err = sql.Open("pgx", *dsn); err != nil {
		log.Fatalf("database: %v", err)
	}
	redisClient = redis.NewClient(&redis.Options{Addr: *redisAddr})

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.POST("/notify/alipay", HandlePayNotify)
	log.Printf("seed-gin listening on %s (db-delay %s)", *listen, dbDelay)
	if err := r.Run(*listen); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}
